using System.CommandLine;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Layout;

namespace Orleans.Optim.Cli.Commands;

/// <summary><c>client conformance</c>: replays PyTorch reference cases through a live cluster.</summary>
public static class ConformanceCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var paths = new Argument<string[]>("paths")
        {
            Description = "Case files (<case>.json) or folders of them.",
            Arity = ArgumentArity.OneOrMore,
        };
        var output = new Option<string?>("--out") { Description = "Write each case's exported final state dict as DIR/<case>.pt." };
        var shardSize = new Option<int>("--shard-size")
        {
            Description = "Maximum elements per shard; small values split the cases' parameters over several shards.",
            DefaultValueFactory = _ => OptimizerSpec.DefaultMaxShardElements,
        };
        var cluster = new ClusterOptions();
        var command = new Command("conformance", "Run PyTorch reference cases through the cluster and compare every value bit for bit.")
        {
            paths, output, shardSize,
        };
        cluster.AddTo(command);

        command.SetAction(async (parseResult, cancellationToken) =>
        {
            string[] casePaths = parseResult.GetValue(paths)!;
            var files = ConformanceRunner.FindCases(casePaths);
            if (files.Count == 0)
            {
                throw new ArgumentException($"No reference cases (<case>.json) found in {string.Join(", ", casePaths)}; give case files or folders that contain them.");
            }
            string? outputDirectory = parseResult.GetValue(output);
            if (outputDirectory is not null)
            {
                Directory.CreateDirectory(outputDirectory);
            }

            int size = parseResult.GetValue(shardSize);
            if (size < 1)
            {
                throw new ArgumentException($"Invalid --shard-size {size}: expected at least 1 element.");
            }

            await using var connection = await cluster.ConnectAsync(parseResult, Console.Error);
            var runner = new ConformanceRunner(connection.Client, size, outputDirectory);
            var counts = new Dictionary<CaseOutcome, int>();
            foreach (string file in files)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var result = await runner.RunAsync(file);
                counts[result.Outcome] = counts.GetValueOrDefault(result.Outcome) + 1;
                string label = result.Outcome switch
                {
                    CaseOutcome.Pass => "PASS",
                    CaseOutcome.Fail => "FAIL",
                    _ => "UNSUPPORTED",
                };
                Console.WriteLine(result.Detail is null ? $"{label} {result.Name}" : $"{label} {result.Name}: {result.Detail}");
            }

            Console.WriteLine(
                $"{counts.GetValueOrDefault(CaseOutcome.Pass)} passed, {counts.GetValueOrDefault(CaseOutcome.Fail)} failed, " +
                $"{counts.GetValueOrDefault(CaseOutcome.Unsupported)} unsupported");
            return counts.GetValueOrDefault(CaseOutcome.Fail) > 0 ? 1 : 0;
        });
        return command;
    }
}
