using System.Text.Json.Nodes;
using System.Xml.Linq;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.CommandLine;

/// <summary>
/// <c>client bench step</c> run as a separate process that starts silo processes. These tests check the output's
/// shape and the option checks, never a timing.
/// </summary>
public sealed class BenchStepCommandTests : IDisposable
{
    private static readonly string[] RequiredFields =
    [
        "benchmark", "name", "median_s", "baseline", "baseline_median_s", "ratio", "elements", "repetitions", "bytes_per_element",
        "gb_per_s", "silos", "shards", "workers", "payload_bytes",
    ];

    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-bench-step-").FullName;

    [Fact]
    public void StepJsonLinesAndChart()
    {
        string chart = Path.Combine(_folder, "step.svg");

        var result = CommandRunner.RunClient(
            ["bench", "step", "--elements", "3000,20000", "--silos", "1,2", "--shard-elements", "5000", "--repetitions", "2", "--json", "--chart", chart],
            _folder,
            TimeSpan.FromMinutes(4));

        Assert.True(result.ExitCode == 0, $"Exit code {result.ExitCode}. Error output:\n{result.Error}");
        var figures = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonNode.Parse(line)!.AsObject()).ToList();
        var names = figures.Select(f => f["name"]!.GetValue<string>()).ToList();
        Assert.Equal(
            ["step.1silos.3000", "step.1silos.20000", "step.2silos.3000", "step.2silos.20000", "tcp.1silos.3000", "tcp.1silos.20000", "tcp.2silos.3000", "tcp.2silos.20000"],
            names);

        foreach (var figure in figures)
        {
            string name = figure["name"]!.GetValue<string>();
            foreach (string field in RequiredFields)
            {
                Assert.True(figure.ContainsKey(field), $"{name} lacks the field '{field}'.");
            }

            string[] parts = name.Split('.');
            long elements = long.Parse(parts[2]);
            Assert.Equal("step", figure["benchmark"]!.GetValue<string>());
            Assert.Equal(elements, figure["elements"]!.GetValue<long>());
            Assert.Equal(int.Parse(parts[1].Replace("silos", "")), figure["silos"]!.GetValue<int>());
            Assert.Equal(8, figure["bytes_per_element"]!.GetValue<int>());
            Assert.Equal(8 * elements, figure["payload_bytes"]!.GetValue<long>());
            Assert.Equal((elements + 4999) / 5000, figure["shards"]!.GetValue<int>());
            Assert.Equal(1, figure["workers"]!.GetValue<int>());
            Assert.Equal(2, figure["repetitions"]!.GetValue<int>());
            Assert.True(figure["median_s"]!.GetValue<double>() > 0, $"{name}: median_s is not positive.");
            if (parts[0] == "step")
            {
                Assert.Equal("tcp." + parts[1] + "." + parts[2], figure["baseline"]!.GetValue<string>());
                Assert.True(figure["baseline_median_s"]!.GetValue<double>() > 0, $"{name}: baseline_median_s is not positive.");
                Assert.True(figure["ratio"]!.GetValue<double>() > 0, $"{name}: ratio is not positive.");
                Assert.Equal(0.5, figure["target_ratio"]!.GetValue<double>());
                Assert.True(figure["bits_match_plain"]!.GetValue<bool>(), $"{name}: the cluster step's bits differ from the plain Adam kernel's.");
                Assert.True(figure["client_cpu_s"]!.GetValue<double>() >= 0, $"{name}: client_cpu_s is negative.");
                Assert.True(figure["silo_cpu_s"]!.GetValue<double>() >= 0, $"{name}: silo_cpu_s is negative.");
            }
            else
            {
                Assert.Null(figure["baseline"]);
                Assert.Null(figure["ratio"]);
                Assert.True(figure["cpu_s"]!.GetValue<double>() >= 0, $"{name}: cpu_s is negative.");
            }
        }

        var svg = XDocument.Load(chart).Root!;
        XNamespace ns = "http://www.w3.org/2000/svg";
        Assert.Equal(ns + "svg", svg.Name);

        // Two panels, each with a solid step line and a dashed loopback line per series, and a dot per step figure.
        Assert.Equal(8, svg.Descendants(ns + "polyline").Count());
        Assert.Equal(8, svg.Descendants(ns + "circle").Count());
        Assert.Contains(result.Error.Split('\n'), line => line.StartsWith("Wrote the chart to ", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--silos", "0", "error: Invalid --silos 0: expected one or more silo counts from 1 to 8, such as --silos 1,2,3.")]
    [InlineData("--silos", "1,9", "error: Invalid --silos 1,9: expected one or more silo counts from 1 to 8, such as --silos 1,2,3.")]
    [InlineData("--silos", "1,,2", "error: Invalid --silos '1,,2': '' is not a whole number. Give comma-separated whole numbers, such as --silos 1,2,3.")]
    [InlineData("--silos", "2,2", "error: Invalid --silos 2,2: 2 is given more than once. Give each value once.")]
    [InlineData("--elements", "10M", "error: Invalid --elements '10M': '10M' is not a whole number. Give comma-separated whole numbers, such as --elements 10000000.")]
    [InlineData("--elements", "-5", "error: Invalid --elements '-5': '-5' is not a whole number. Give comma-separated whole numbers, such as --elements 10000000.")]
    [InlineData("--elements", "0", "error: Invalid --elements 0: expected one or more parameter counts from 1 to 250000000, such as --elements 10000000.")]
    [InlineData("--elements", "1000,1000", "error: Invalid --elements 1000,1000: 1000 is given more than once. Give each value once.")]
    [InlineData("--repetitions", "0", "error: Invalid --repetitions 0: expected 1 to 100, such as --repetitions 5.")]
    [InlineData("--shard-elements", "0", "error: Invalid --shard-elements 0: expected 1 to 2097152, such as --shard-elements 1048576.")]
    public void StepRejectsBadOption(string option, string value, string message)
    {
        string chart = Path.Combine(_folder, "chart.svg");

        var result = CommandRunner.RunClient(["bench", "step", option, value, "--chart", chart], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(message, result.Error);
        Assert.DoesNotContain("Starting", result.Error);
        Assert.Equal("", result.Output);
        Assert.False(File.Exists(chart), "A rejected run wrote a chart.");
    }

    [Fact]
    public void StepRejectsMissingSiloHost()
    {
        string missing = Path.Combine(_folder, "no-silo", "Orleans.Optim.Silo.dll");

        var result = CommandRunner.RunClient(["bench", "step", "--elements", "1000", "--silos", "1", "--silo-dll", missing], _folder);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"error: Invalid --silo-dll '{missing}': the file does not exist. Pass the path of Orleans.Optim.Silo.dll.", result.Error);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
