using System.Globalization;
using System.Text.Json.Nodes;

namespace Orleans.Optim.Cli.Bench;

/// <summary>Prints the export and fan-out figures: <see cref="BenchReport"/>'s fields and layout, with the memory growth added.</summary>
public static class ClusterStateReport
{
    /// <summary>
    /// Writes one JSON object per figure and line: <see cref="BenchReport.WriteJsonLines"/>'s fields, then
    /// <c>tensors</c>, <c>shards</c>, <c>state_bytes</c>, <c>peak_memory_growth_bytes</c>,
    /// <c>peak_memory_growth_fraction</c> (of <c>state_bytes</c>), <c>first_run_memory_growth_bytes</c> (the
    /// untimed first run, which also fills buffer pools), <c>peak_memory_reset</c>,
    /// <c>target_memory_fraction</c> and <c>meets_memory_target</c>. The memory fields are <c>null</c> where the
    /// figure did not measure memory (the torch baseline runs in another process).
    /// </summary>
    public static void WriteJsonLines(ClusterStateBenchResult result, TextWriter output)
    {
        foreach (var figure in result.Figures)
        {
            using var line = new StringWriter(CultureInfo.InvariantCulture);
            BenchReport.WriteJsonLines(result.Settings.Benchmark, [figure.Figure], result.LoadAverage, line);
            var json = JsonNode.Parse(line.ToString())!.AsObject();
            json["tensors"] = result.Settings.Tensors;
            json["shards"] = result.ShardCount;
            json["state_bytes"] = result.Settings.StateBytes;
            var memory = figure.Memory;
            json["peak_memory_growth_bytes"] = memory?.PeakGrowthBytes;
            json["peak_memory_growth_fraction"] = memory?.Fraction;
            json["first_run_memory_growth_bytes"] = memory?.FirstRunGrowthBytes;
            json["peak_memory_reset"] = memory?.PeakReset;
            json["target_memory_fraction"] = memory?.TargetFraction;
            json["meets_memory_target"] = memory?.MeetsTarget;
            output.WriteLine(json.ToJsonString());
        }
    }

    /// <summary>Writes the header, the figures as <see cref="BenchReport.WriteTable"/> does, and one memory line per measured figure.</summary>
    public static void WriteTable(ClusterStateBenchResult result, TextWriter output)
    {
        var s = result.Settings;
        string load = result.LoadAverage is { } l ? l.ToString("F2", CultureInfo.InvariantCulture) : "unknown";
        output.WriteLine(
            $"{Capitalized(s.Benchmark)} benchmark: Adam state of {s.Elements.ToString("N0", CultureInfo.InvariantCulture)} parameters in " +
            $"{s.Tensors.ToString("N0", CultureInfo.InvariantCulture)} tensor(s) and {result.ShardCount.ToString("N0", CultureInfo.InvariantCulture)} shard(s), " +
            $"{s.StateBytes / 1e6:F1} MB of exp_avg and exp_avg_sq; median of {s.Repetitions} timed runs after one untimed run; 1-minute load average {load} at the start.");
        output.WriteLine("ratio: torch.save's median time divided by the figure's (both count 8 bytes of state per parameter); above 1 is faster than torch.");
        output.WriteLine();

        var notes = new List<string>();
        foreach (var figure in result.Figures)
        {
            if (figure.Memory is not { } memory)
            {
                continue;
            }

            string target = memory.TargetFraction is { } t
                ? $", target <= {t * 100:F0}%: {(memory.MeetsTarget == true ? "met" : "not met")}"
                : string.Empty;
            string method = memory.PeakReset
                ? "VmHWM after the run minus VmRSS before it, the peak reset through /proc/self/clear_refs"
                : "VmHWM after the run minus VmRSS before it, an upper bound because the peak could not be reset";
            notes.Add(
                $"memory: {figure.Figure.Measurement.Name} grew this process's peak resident set by up to {memory.PeakGrowthBytes / 1e6:F1} MB, " +
                $"{memory.Fraction * 100:F1}% of the state{target}; the untimed first run by {memory.FirstRunGrowthBytes / 1e6:F1} MB ({method}).");
        }

        notes.AddRange(result.Skipped.Select(note => "skipped: " + note));
        BenchReport.WriteTable(result.Figures.Select(f => f.Figure), notes, output);
    }

    private static string Capitalized(string word) => char.ToUpperInvariant(word[0]) + word[1..];
}
