using System.Text.Json.Nodes;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.CommandLine;

/// <summary>
/// <c>client bench export</c> and <c>client bench fanout</c> run as separate processes with small states. These tests
/// check the output's shape and the option checks, never a timing.
/// </summary>
public sealed class ClusterStateBenchCommandTests : IDisposable
{
    private static readonly string[] RequiredFields =
        ["benchmark", "name", "median_s", "baseline", "baseline_median_s", "ratio", "elements", "repetitions", "tensors", "shards", "state_bytes",
         "peak_memory_growth_bytes", "peak_memory_growth_fraction", "first_run_memory_growth_bytes", "target_memory_fraction", "meets_memory_target"];

    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-bench-cluster-").FullName;

    [Fact]
    public void ExportJsonLinesHaveFields()
    {
        var result = CommandRunner.RunClient(["bench", "export", "--elements", "30000", "--tensors", "3", "--shard-elements", "4000", "--repetitions", "1", "--json"], _folder);

        Assert.True(result.ExitCode == 0, result.Error);
        var figures = Figures(result.Output);
        Assert.Equal(["torch.save", "torch.save.fsync", "export.save.nofsync", "export.save"], figures.Keys);
        foreach (var (name, figure) in figures)
        {
            foreach (string field in RequiredFields)
            {
                Assert.True(figure.ContainsKey(field), $"{name} lacks the field '{field}'.");
            }

            Assert.Equal("export", figure["benchmark"]!.GetValue<string>());
            Assert.Equal(30000, figure["elements"]!.GetValue<long>());
            Assert.Equal(3, figure["tensors"]!.GetValue<int>());
            Assert.Equal(9, figure["shards"]!.GetValue<int>());
            Assert.Equal(240000, figure["state_bytes"]!.GetValue<long>());
            Assert.True(figure["median_s"]!.GetValue<double>() > 0, $"{name}: median_s is not positive.");
        }

        var save = figures["export.save"];
        Assert.Equal("torch.save.fsync", save["baseline"]!.GetValue<string>());
        Assert.True(save["ratio"]!.GetValue<double>() > 0, "export.save: ratio is not positive.");
        Assert.Equal(1.0, save["target_ratio"]!.GetValue<double>());
        Assert.Equal(0.25, save["target_memory_fraction"]!.GetValue<double>());
        Assert.True(save["peak_memory_growth_bytes"]!.GetValue<long>() >= 0, "export.save: the memory growth is negative.");
        Assert.Equal("torch.save", figures["export.save.nofsync"]["baseline"]!.GetValue<string>());
        Assert.Null(figures["torch.save"]["peak_memory_growth_bytes"]);
        Assert.Null(figures["torch.save"]["ratio"]);
    }

    [Fact]
    public void FanoutJsonLinesIncludeStateDict()
    {
        var result = CommandRunner.RunClient(["bench", "fanout", "--elements", "5000", "--tensors", "50", "--repetitions", "1", "--skip-torch", "--json"], _folder);

        Assert.True(result.ExitCode == 0, result.Error);
        var figures = Figures(result.Output);
        Assert.Equal(["fanout.state_dict", "fanout.save.nofsync", "fanout.save"], figures.Keys);
        Assert.Equal(50, figures["fanout.state_dict"]["shards"]!.GetValue<int>());
        Assert.Null(figures["fanout.state_dict"]["baseline"]);
        Assert.Null(figures["fanout.state_dict"]["target_memory_fraction"]);
        Assert.Contains("skipped: torch.save and torch.save.fsync: --skip-torch was given.", result.Error);
    }

    [Fact]
    public void FanoutTableListsMemory()
    {
        var result = CommandRunner.RunClient(["bench", "fanout", "--elements", "2000", "--tensors", "20", "--repetitions", "1", "--state-dict", "false", "--skip-torch"], _folder);

        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains("Fanout benchmark: Adam state of 2,000 parameters in 20 tensor(s) and 20 shard(s)", result.Output);
        Assert.Contains("memory: fanout.save grew this process's peak resident set by up to", result.Output);
        Assert.DoesNotContain("fanout.state_dict", result.Output);
    }

    [Fact]
    public void ExportSkipsMissingPython()
    {
        var result = CommandRunner.RunClient(
            ["bench", "export", "--elements", "1000", "--repetitions", "1", "--python", Path.Combine(_folder, "no-python"), "--json"], _folder);

        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains("skipped: torch.save and torch.save.fsync:", result.Error);
        Assert.Contains("could not be started", result.Error);
        Assert.DoesNotContain("torch.save", result.Output);
    }

    [Theory]
    [InlineData("export", "--elements", "0", "Invalid --elements 0: expected 1 to 200000000 parameters.")]
    [InlineData("export", "--elements", "200000001", "Invalid --elements 200000001: expected 1 to 200000000 parameters.")]
    [InlineData("fanout", "--tensors", "0", "Invalid --tensors 0: expected 1 to 100000.")]
    [InlineData("fanout", "--repetitions", "21", "Invalid --repetitions 21: expected 1 to 20.")]
    [InlineData("export", "--shard-elements", "0", "Invalid --shard-elements 0: expected at least 1.")]
    public void RejectsOutOfRangeOption(string benchmark, string option, string value, string message)
    {
        var result = CommandRunner.RunClient(["bench", benchmark, option, value], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("error: " + message, result.Error);
        Assert.DoesNotContain("Starting an embedded cluster", result.Error);
    }

    [Fact]
    public void RejectsMoreTensorsThanElements()
    {
        var result = CommandRunner.RunClient(["bench", "fanout", "--elements", "10", "--tensors", "11"], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("error: Invalid --tensors 11: every tensor needs at least one of the 10 elements (--elements); give at most 10 tensors.", result.Error);
    }

    [Fact]
    public void RejectsMissingOutputFolder()
    {
        string missing = Path.Combine(_folder, "missing");

        var result = CommandRunner.RunClient(["bench", "export", "--output", missing], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"error: Invalid --output '{missing}': the folder does not exist.", result.Error);
        Assert.False(Directory.Exists(missing), "The benchmark created the missing output folder.");
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static Dictionary<string, JsonObject> Figures(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonNode.Parse(line)!.AsObject())
            .ToDictionary(f => f["name"]!.GetValue<string>());
}
