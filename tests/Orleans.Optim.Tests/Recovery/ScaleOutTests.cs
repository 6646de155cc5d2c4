using Orleans.Hosting;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Engine;
using Orleans.Optim.Hosting;
using Orleans.Optim.Layout;
using Orleans.TestingHost;

namespace Orleans.Optim.Tests.Recovery;

/// <summary>A silo added to a running cluster takes a fair share of the shards, which keep their exact state.</summary>
public sealed class ScaleOutTests : IAsyncLifetime
{
    private InProcessTestCluster? _cluster;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddMemoryGrainStorage(OptimizerSiloBuilderExtensions.StorageName);
            silo.AddOptimizerGrains();
        });
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }

    [Fact]
    public async Task AddedSiloTakesFairShare()
    {
        var spec = new OptimizerSpec
        {
            Algorithm = "SGD",
            DefaultOptions = [new("lr", 0.1), new("momentum", 0.9)],
            Groups = [new ParamGroupSpec([], [new ParameterSpec("w", [12, 10])])],
            MaxShardElements = 10,
        };
        float[][] initial = [Enumerable.Range(0, 120).Select(i => i / 100f).ToArray()];
        var optimizer = await ClusterOptimizer.CreateAsync(_cluster!.Client, "scale-out", spec, initial);
        var local = new LocalOptimizer(spec, [(float[])initial[0].Clone()]);
        for (int step = 1; step <= 3; step++)
        {
            await optimizer.StepAsync(0, [Gradient(step)]);
            local.Step([Gradient(step)]);
        }

        var before = await CountsAsync(optimizer);
        Assert.Equal([6, 6], before.Values.Order());

        await _cluster.StartAdditionalSiloAsync();
        var after = await WaitForCountsAsync(optimizer, silos: 3, TimeSpan.FromSeconds(60));

        Assert.Equal([4, 4, 4], after.Values.Order());
        Assert.Equal(3, optimizer.StepCount);
        Assert.Null(StateDictComparison.FirstDifference(local.StateDict(), await optimizer.StateDictAsync()));
        for (int step = 4; step <= 6; step++)
        {
            var updated = await optimizer.StepAsync(0, [Gradient(step)]);
            local.Step([Gradient(step)]);
            Assert.Null(StateDictComparison.ArrayDifference(local.Parameter(0), updated[0]));
        }
    }

    private static async Task<Dictionary<string, int>> CountsAsync(ClusterOptimizer optimizer) =>
        (await optimizer.GetShardStatusesAsync()).GroupBy(s => s.Silo).ToDictionary(g => g.Key, g => g.Count());

    private static async Task<Dictionary<string, int>> WaitForCountsAsync(ClusterOptimizer optimizer, int silos, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var counts = await CountsAsync(optimizer);
            if ((counts.Count == silos && counts.Values.Max() - counts.Values.Min() <= 1) || DateTime.UtcNow > deadline)
            {
                return counts;
            }

            await Task.Delay(500);
        }
    }

    private static float[] Gradient(int step) => Enumerable.Range(0, 120).Select(i => (float)Math.Sin(step * 7 + i)).ToArray();
}
