using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Optim.Client;
using Orleans.Optim.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Orleans.Optim.Tests.CommandLine;

/// <summary>A training client process killed in the middle of its run, with the silo in another process.</summary>
public sealed class WorkerProcessTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-workers-").FullName;

    [Fact]
    public async Task KilledClientLeavesConsistentStep()
    {
        int[] ports = LoopbackPorts.Free(2);
        string clusterId = "workers-" + Guid.NewGuid().ToString("N")[..8];
        using var silo = SiloProcess.Start(new Dictionary<string, string>
        {
            ["SiloPort"] = ports[0].ToString(),
            ["GatewayPort"] = ports[1].ToString(),
            ["ClusterId"] = clusterId,
            ["Shards:StepTimeout"] = "00:00:02",
        });

        // Four workers push 38,000-element gradients in 12 shards each step. The client is killed while it trains,
        // often while a step waits for some ranks and sometimes in a push that reached only some of the shards.
        var startInfo = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _folder,
        };
        foreach (string argument in (string[])[Path.Combine(AppContext.BaseDirectory, "client.dll"), "train", "--epochs", "200", "--hidden", "512",
            "--shard-size", "4096", "--gateway", ports[1].ToString(), "--cluster-id", clusterId, "--name", "killed-client", "--checkpoint-dir", "run"])
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var client = Process.Start(startInfo)!;
        var errors = client.StandardError.ReadToEndAsync();
        var clock = Stopwatch.StartNew();
        string? line;
        while ((line = await client.StandardOutput.ReadLineAsync()) is not null && !line.StartsWith("epoch", StringComparison.Ordinal))
        {
            output.WriteLine(line);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), "the client did not finish an epoch within 90 s");
        }

        if (line is null)
        {
            Assert.Fail($"the client ended before its first epoch:\n{await errors}\n{silo.Output}");
        }

        await Task.Delay(700);
        Assert.False(client.HasExited, $"the run ended before the client could be killed:\n{(client.HasExited ? await errors : "")}");
        client.Kill(entireProcessTree: true);
        Assert.True(client.WaitForExit(10_000));

        using var host = await ConnectAsync(ports[1], clusterId);
        var grains = host.Services.GetRequiredService<IClusterClient>();
        var workers = new ClusterOptimizer[4];
        for (int rank = 0; rank < workers.Length; rank++)
        {
            workers[rank] = await ClusterOptimizer.AttachAsync(grains, "killed-client");
        }

        // A push that reached only some shards is abandoned on all of them once the step timeout ends.
        var statuses = await workers[0].GetShardStatusesAsync();
        output.WriteLine($"right after the kill: shard steps {string.Join(" ", statuses.Select(s => s.Step))}, pending ranks {string.Join(" ", statuses.Select(s => s.PendingRanks.Length))}");
        for (int poll = 0; poll < 100 && statuses.Any(s => s.PendingRanks.Length > 0); poll++)
        {
            await Task.Delay(100);
            statuses = await workers[0].GetShardStatusesAsync();
        }

        long step = statuses[0].Step;
        output.WriteLine($"killed after {clock.Elapsed.TotalSeconds:0.0} s; shards at step {step}");
        Assert.Equal(12, statuses.Count);
        Assert.All(statuses, status => Assert.Empty(status.PendingRanks));
        Assert.All(statuses, status => Assert.Equal(step, status.Step));
        Assert.True(step > 0, "the client made no step before it was killed");

        // New workers continue from the step the shards agree on.
        var random = new Random(5);
        var results = await Task.WhenAll(workers.Select((worker, rank) =>
            worker.StepAsync(rank, worker.Layout.Parameters.Select(p => (float[]?)Enumerable.Range(0, (int)p.NumElements).Select(_ => (float)random.NextDouble()).ToArray()).ToList())));
        statuses = await workers[0].GetShardStatusesAsync();

        Assert.All(statuses, status => Assert.Equal(step + 1, status.Step));
        Assert.All(workers, worker => Assert.Equal(step + 1, worker.StepCount));
        Assert.All(results, result => Assert.Equal(results[0].SelectMany(v => v), result.SelectMany(v => v)));
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static async Task<IHost> ConnectAsync(int gatewayPort, string clusterId)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client => client.ConfigureOptimizerClient([gatewayPort], clusterId, responseTimeout: TimeSpan.FromSeconds(30)));
        var host = builder.Build();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await host.StartAsync(timeout.Token);
        return host;
    }
}
