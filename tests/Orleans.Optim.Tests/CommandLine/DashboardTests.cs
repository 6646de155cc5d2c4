using System.Text.Json;
using Orleans.Optim.Hosting;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.CommandLine;

/// <summary>
/// The Orleans Dashboard of a silo process: off by default, on 127.0.0.1 when <c>DashboardPort</c> is set, and
/// showing the shard grains of a training run.
/// </summary>
public sealed class DashboardTests : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-dashboard-").FullName;

    [Fact]
    public void DashboardIsOffByDefault()
    {
        var settings = new SiloSettings();

        settings.Validate();

        Assert.Null(settings.DashboardPort);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(65536)]
    public void ValidateRejectsDashboardPortOutOfRange(int port)
    {
        var settings = new SiloSettings { DashboardPort = port };

        var error = Assert.Throws<ArgumentException>(settings.Validate);

        Assert.Equal($"Invalid Optim:Silo:DashboardPort {port}: expected a TCP port from 1 to 65535.", error.Message);
    }

    [Theory]
    [InlineData(11111, "SiloPort")]
    [InlineData(30000, "GatewayPort")]
    public void ValidateRejectsDashboardOnSiloPort(int port, string other)
    {
        var settings = new SiloSettings { DashboardPort = port };

        var error = Assert.Throws<ArgumentException>(settings.Validate);

        Assert.Equal($"Invalid Optim:Silo:DashboardPort {port}: it is also the silo's {other}. Give the dashboard a port of its own.", error.Message);
    }

    [Fact]
    public async Task DashboardShowsShardGrains()
    {
        int[] ports = LoopbackPorts.Free(3);
        string clusterId = "test-" + Guid.NewGuid().ToString("N")[..8];
        using var silo = SiloProcess.Start(new Dictionary<string, string>
        {
            ["SiloPort"] = $"{ports[0]}",
            ["GatewayPort"] = $"{ports[1]}",
            ["DashboardPort"] = $"{ports[2]}",
            ["ClusterId"] = clusterId,
        });
        Assert.True(silo.WaitForOutput("Silo started:", StartTimeout), silo.Output);
        Assert.Contains($"Orleans Dashboard on http://127.0.0.1:{ports[2]}/.", silo.Output);
        Assert.Contains($"Now listening on: http://127.0.0.1:{ports[2]}", silo.Output);

        var result = CommandRunner.RunClient(
            ["train", "--epochs", "1", "--gateway", $"{ports[1]}", "--cluster-id", clusterId, "--checkpoint-dir", "run"],
            _folder);
        Assert.True(result.ExitCode == 0, result.Error);

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{ports[2]}/"), Timeout = TimeSpan.FromSeconds(30) };
        string page = await http.GetStringAsync("");
        Assert.Contains("<title>Orleans Dashboard</title>", page);

        // The counters are sampled once a second, so the shard grains of the finished run appear within a few samples.
        var grainTypes = new HashSet<string>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!grainTypes.Any(t => t.EndsWith(".ShardGrain", StringComparison.Ordinal)) && DateTime.UtcNow < deadline)
        {
            using var counters = JsonDocument.Parse(await http.GetStringAsync("DashboardCounters"));
            var silos = counters.RootElement.GetProperty("hosts").EnumerateArray().Select(h => h.GetProperty("siloAddress").GetString()).ToList();
            Assert.Single(silos);
            Assert.StartsWith($"127.0.0.1:{ports[0]}@", silos[0]);
            grainTypes.UnionWith(counters.RootElement.GetProperty("simpleGrainStats").EnumerateArray().Select(g => g.GetProperty("grainType").GetString()!));
            await Task.Delay(500);
        }

        Assert.Contains("Orleans.Optim.Shards.ShardGrain", grainTypes);
        Assert.Contains("Orleans.Optim.Coordinator.OptimizerGrain", grainTypes);
    }

    [Fact]
    public void SiloWithoutDashboardPortServesNoDashboard()
    {
        int[] ports = LoopbackPorts.Free(3);
        using var silo = SiloProcess.Start(new Dictionary<string, string>
        {
            ["SiloPort"] = $"{ports[0]}",
            ["GatewayPort"] = $"{ports[1]}",
            ["ClusterId"] = "test-" + Guid.NewGuid().ToString("N")[..8],
        });

        Assert.True(silo.WaitForOutput("Silo started:", StartTimeout), silo.Output);
        Assert.Contains("Orleans Dashboard off.", silo.Output);
        Assert.DoesNotContain("Now listening on:", silo.Output);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
