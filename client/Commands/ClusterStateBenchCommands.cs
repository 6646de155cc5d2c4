using System.CommandLine;
using Orleans.Optim.Cli.Bench;

namespace Orleans.Optim.Cli.Commands;

/// <summary><c>client bench export</c> and <c>client bench fanout</c>: an optimizer's state taken from a cluster, against <c>torch.save</c>.</summary>
public static class ClusterStateBenchCommands
{
    /// <summary>Creates <c>client bench export</c>: a large Adam state in few tensors, streamed into a <c>.pt</c> file.</summary>
    public static Command CreateExport() => Create(
        "export",
        "Time the streamed .pt export of an Adam state held by a cluster, and this process's peak memory growth, against torch.save of the same state.",
        new ClusterStateBenchSettings { Benchmark = "export", Elements = 50_000_000, Tensors = 1, Repetitions = 3 },
        stateDictByDefault: false);

    /// <summary>Creates <c>client bench fanout</c>: an Adam state over many small tensors, each in its own shard.</summary>
    public static Command CreateFanout() => Create(
        "fanout",
        "Time state_dict and the streamed .pt save of an Adam state over many small tensors held by a cluster, against torch.save of the same state.",
        new ClusterStateBenchSettings { Benchmark = "fanout", Elements = 10_000_000, Tensors = 2_000, Repetitions = 5 },
        stateDictByDefault: true);

    private static Command Create(string name, string description, ClusterStateBenchSettings defaults, bool stateDictByDefault)
    {
        var elements = new Option<int>("--elements")
        {
            Description = $"Number of parameters (float32 elements) over all tensors, 1 to {ClusterStateBenchSettings.MaxElements}; the Adam state is 8 bytes per parameter.",
            DefaultValueFactory = _ => defaults.Elements,
        };
        var tensors = new Option<int>("--tensors")
        {
            Description = $"Number of parameter tensors that share the elements evenly, 1 to {ClusterStateBenchSettings.MaxTensors}.",
            DefaultValueFactory = _ => defaults.Tensors,
        };
        var shardElements = new Option<int>("--shard-elements")
        {
            Description = "Maximum elements per shard; a larger tensor is split over several shards.",
            DefaultValueFactory = _ => defaults.ShardElements,
        };
        var repetitions = new Option<int>("--repetitions")
        {
            Description = $"Timed runs of each figure after one untimed run, 1 to {ClusterStateBenchSettings.MaxRepetitions}; figures are medians.",
            DefaultValueFactory = _ => defaults.Repetitions,
        };
        var stateDict = new Option<bool>("--state-dict")
        {
            Description = "Also time state_dict, gathered into this process" + (stateDictByDefault ? " (on by default here; --state-dict false leaves it out)." : "."),
            DefaultValueFactory = _ => stateDictByDefault,
        };
        var output = new Option<string?>("--output")
        {
            Description = "Existing folder for the .pt files, which each run writes and deletes (default: a new temporary folder).",
        };
        var python = new Option<string>("--python")
        {
            Description = "Python interpreter with PyTorch 1.13 for the torch.save baseline.",
            DefaultValueFactory = _ => defaults.Python,
        };
        var skipTorch = new Option<bool>("--skip-torch") { Description = "Leave out the torch.save baseline and the ratios." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per figure and line instead of a table." };
        var cluster = new ClusterOptions();

        var command = new Command(name, description) { elements, tensors, shardElements, repetitions, stateDict, output, python, skipTorch, json };
        cluster.AddTo(command);

        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var settings = defaults with
            {
                Elements = parseResult.GetValue(elements),
                Tensors = parseResult.GetValue(tensors),
                ShardElements = parseResult.GetValue(shardElements),
                Repetitions = parseResult.GetValue(repetitions),
                IncludeStateDict = parseResult.GetValue(stateDict),
                OutputFolder = parseResult.GetValue(output),
                Python = parseResult.GetValue(python)!,
                RunTorch = !parseResult.GetValue(skipTorch),
            };

            // Bad options fail before a cluster starts.
            settings.Validate();
            await using var connection = await cluster.ConnectAsync(parseResult, Console.Error);
            var result = await ClusterStateBenchmark.RunAsync(settings, connection.Client, Console.Error);
            if (parseResult.GetValue(json))
            {
                ClusterStateReport.WriteJsonLines(result, Console.Out);
                foreach (string note in result.Skipped)
                {
                    Console.Error.WriteLine("skipped: " + note);
                }
            }
            else
            {
                ClusterStateReport.WriteTable(result, Console.Out);
            }

            return 0;
        });
        return command;
    }
}
