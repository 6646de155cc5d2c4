using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Engine;
using Orleans.Optim.Hosting;
using Orleans.Optim.Layout;
using Orleans.Optim.Tests.Infrastructure;
using Orleans.Runtime.Hosting;
using Orleans.Serialization;
using Orleans.TestingHost;

namespace Orleans.Optim.Tests.Recovery;

/// <summary>
/// A silo killed in the middle of training: its shards come back on the survivors, the optimizer rolls back to the
/// newest checkpoint, the workers continue from there, and the run ends bit-identical to one without a failure.
/// </summary>
public sealed class SiloLossRecoveryTests : IAsyncLifetime
{
    private const int WorldSize = 2;
    private const int TotalSteps = 20;
    private const int CheckpointEvery = 5;
    private const int KillAfterStep = 12;

    private static readonly ConcurrentDictionary<string, ConcurrentDictionary<string, (byte[], string)>> s_stores = new();

    private readonly string _checkpoints = Directory.CreateTempSubdirectory("orleans-optim-recovery-").FullName;
    private readonly string _storeKey = Guid.NewGuid().ToString("N");
    private InProcessTestCluster? _cluster;

    public async Task InitializeAsync()
    {
        s_stores[_storeKey] = new();
        var builder = new InProcessTestClusterBuilder(3);
        string storeKey = _storeKey;
        string checkpoints = _checkpoints;
        builder.ConfigureSilo((_, silo) =>
        {
            silo.Services.AddGrainStorage(OptimizerSiloBuilderExtensions.StorageName, (services, _) =>
                new ProcessWideGrainStorage(services.GetRequiredService<Serializer>(), s_stores[storeKey]));
            silo.AddOptimizerGrains(
                shards => shards.StepTimeout = TimeSpan.FromSeconds(10),
                options => options.Path = checkpoints);
            silo.Services.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(15));
        });
        builder.ConfigureClient(client => client.Services.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(15)));
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }

        s_stores.TryRemove(_storeKey, out _);
        Directory.Delete(_checkpoints, recursive: true);
    }

    [Fact]
    public async Task KilledSiloRunEndsBitIdentical()
    {
        var spec = new OptimizerSpec
        {
            Algorithm = "Adam",
            DefaultOptions = [new("lr", 0.01), new("amsgrad", true)],
            Groups = [new ParamGroupSpec([], [new ParameterSpec("w", [6, 10]), new ParameterSpec("b", [10])])],
            WorldSize = WorldSize,
            MaxShardElements = 8,
        };
        float[][] initial = [Values(60, seed: 1), Values(10, seed: 2)];
        var workers = new ClusterOptimizer[WorldSize];
        workers[0] = await ClusterOptimizer.CreateAsync(_cluster!.Client, "recovery-run", spec, initial);
        workers[1] = await ClusterOptimizer.AttachAsync(_cluster.Client, "recovery-run");
        var statuses = await workers[0].GetShardStatusesAsync();
        Assert.Equal(3, statuses.Select(s => s.Silo).Distinct().Count());

        float[][] parameters = initial;
        int recoveries = 0;
        long rolledBackTo = -1;
        long step = 0;
        while (step < TotalSteps)
        {
            try
            {
                var results = await Task.WhenAll(Enumerable.Range(0, WorldSize).Select(rank => workers[rank].StepAsync(rank, Gradients(step + 1, rank))));
                parameters = results[0];
                step++;
                if (step % CheckpointEvery == 0)
                {
                    await workers[0].CheckpointAsync();
                }

                if (step == KillAfterStep && recoveries == 0)
                {
                    var victim = _cluster.Silos.First(s => s.SiloAddress.ToString() != _cluster.Silos[0].SiloAddress.ToString());
                    await _cluster.KillSiloAsync(victim);
                }
            }
            catch (Exception e) when (e is TimeoutException or OrleansException or Wire.OptimizerFaultException && recoveries < 3)
            {
                recoveries++;
                rolledBackTo = await workers[0].RecoverAsync();
                await workers[1].RecoverAsync();
                parameters = await workers[0].GetParametersAsync();
                step = rolledBackTo;
            }
        }

        Assert.True(recoveries >= 1, "the killed silo caused no failure, so nothing was recovered");
        Assert.Equal(10, rolledBackTo);

        var reference = new LocalOptimizer(spec, initial.Select(v => (float[])v.Clone()).ToList());
        for (int s = 1; s <= TotalSteps; s++)
        {
            var mean = new float[2][];
            for (int p = 0; p < 2; p++)
            {
                mean[p] = new float[initial[p].Length];
                GradientReducer.Reduce(Enumerable.Range(0, WorldSize).Select(rank => Gradients(s, rank)[p]).ToList(), GradientReduction.Mean, mean[p]);
            }

            reference.Step(mean);
        }

        Assert.Null(StateDictComparison.ArrayDifference(reference.Parameter(0), parameters[0]));
        Assert.Null(StateDictComparison.ArrayDifference(reference.Parameter(1), parameters[1]));
        Assert.Null(StateDictComparison.FirstDifference(reference.StateDict(), await workers[0].StateDictAsync(), new HashSet<string> { StateDictAssembler.ParamNamesKey }));
    }

    private static float[]?[] Gradients(long step, int rank) => [Values(60, seed: (int)(step * 10 + rank)), Values(10, seed: (int)(step * 10 + rank + 5))];

    private static float[] Values(int length, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    }
}
