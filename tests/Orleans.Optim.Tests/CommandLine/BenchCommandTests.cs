using System.Text.Json.Nodes;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.CommandLine;

/// <summary>
/// <c>client bench</c> run as a separate process. These tests check the output's shape, never a timing.
/// </summary>
public sealed class BenchCommandTests : IDisposable
{
    private static readonly string[] RequiredFields =
        ["name", "median_s", "baseline", "baseline_median_s", "ratio", "elements", "repetitions", "threads", "bytes_per_element", "gb_per_s"];

    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-bench-").FullName;

    [Fact]
    public void KernelJsonLinesHaveFields()
    {
        var result = CommandRunner.RunClient(["bench", "kernel", "--elements", "100000", "--repetitions", "1", "--json"], _folder);

        Assert.Equal(0, result.ExitCode);
        var figures = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonNode.Parse(line)!.AsObject()).ToList();
        var names = figures.Select(f => f["name"]!.GetValue<string>()).ToHashSet();
        Assert.Contains("triad.1t", names);
        Assert.Contains("adam.plain.1t", names);
        Assert.Contains("adam.vectorized.1t", names);
        Assert.Contains("sgd.vectorized.1t", names);

        foreach (var figure in figures)
        {
            string name = figure["name"]!.GetValue<string>();
            foreach (string field in RequiredFields)
            {
                Assert.True(figure.ContainsKey(field), $"{name} lacks the field '{field}'.");
            }

            Assert.True(figure["median_s"]!.GetValue<double>() > 0, $"{name}: median_s is not positive.");
            Assert.True(figure["gb_per_s"]!.GetValue<double>() > 0, $"{name}: gb_per_s is not positive.");
            Assert.Equal(100000, figure["elements"]!.GetValue<long>());
            Assert.Equal(1, figure["repetitions"]!.GetValue<int>());
            if (figure["baseline"] is not null)
            {
                Assert.True(figure["baseline_median_s"]!.GetValue<double>() > 0, $"{name}: baseline_median_s is not positive.");
                Assert.True(figure["ratio"]!.GetValue<double>() > 0, $"{name}: ratio is not positive.");
                Assert.Contains(figure["baseline"]!.GetValue<string>(), names);
            }
            else
            {
                Assert.Null(figure["ratio"]);
            }

            if (name.StartsWith("adam.", StringComparison.Ordinal) || name.StartsWith("sgd.", StringComparison.Ordinal))
            {
                Assert.True(figure["bits_match_plain"]!.GetValue<bool>(), $"{name}: the kernel's bits differ from the plain path's.");
            }
        }

        var adamTriad = figures.Single(f => f["name"]!.GetValue<string>() == "adam.vectorized.1t" && f["baseline"]?.GetValue<string>() == "triad.1t");
        Assert.Equal(28, adamTriad["bytes_per_element"]!.GetValue<int>());
        Assert.Equal(0.9, adamTriad["target_ratio"]!.GetValue<double>());
    }

    [Fact]
    public void KernelSkipsMissingTorch()
    {
        var result = CommandRunner.RunClient(
            ["bench", "kernel", "--elements", "1000", "--repetitions", "1", "--threads", "1", "--python", Path.Combine(_folder, "no-python"), "--json"], _folder);

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("skipped: torch.adam.1t and torch.sgd.1t:", result.Error);
        Assert.Contains("could not be started", result.Error);
        Assert.DoesNotContain("torch.", result.Output);
    }

    [Fact]
    public void UnknownBenchmarkListsAvailable()
    {
        var result = CommandRunner.RunClient(["bench", "nope"], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("error: Unknown benchmark 'nope'. Available benchmarks: kernel, step, export, fanout.", result.Error);
    }

    [Fact]
    public void KernelRejectsZeroRepetitions()
    {
        var result = CommandRunner.RunClient(["bench", "kernel", "--repetitions", "0"], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("error: Invalid --repetitions 0: expected 1 to 100.", result.Error);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
