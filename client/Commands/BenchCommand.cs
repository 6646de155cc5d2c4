using System.CommandLine;
using System.Globalization;
using Orleans.Optim.Cli.Bench;

namespace Orleans.Optim.Cli.Commands;

/// <summary><c>client bench</c>: performance benchmarks, one subcommand per benchmark.</summary>
public static class BenchCommand
{
    /// <summary>Creates the command with its benchmark subcommands.</summary>
    public static Command Create()
    {
        // Catches a word that names no subcommand, so that the error can list the benchmarks.
        var benchmark = new Argument<string?>("benchmark") { Arity = ArgumentArity.ZeroOrOne, Hidden = true };
        var command = new Command("bench", "Run a performance benchmark and print its figures.") { benchmark };
        command.Subcommands.Add(CreateKernel());
        command.Subcommands.Add(ClusterStateBenchCommands.CreateExport());
        command.Subcommands.Add(ClusterStateBenchCommands.CreateFanout());

        command.SetAction(int (parseResult) =>
        {
            string available = string.Join(", ", command.Subcommands.Select(c => c.Name));
            string? name = parseResult.GetValue(benchmark);
            throw new CommandException(name is null
                ? $"Missing benchmark name. Available benchmarks: {available}. Run 'client bench <name> --help' for its options."
                : $"Unknown benchmark '{name}'. Available benchmarks: {available}.");
        });
        return command;
    }

    private static Command CreateKernel()
    {
        var defaults = new KernelBenchSettings();
        var elements = new Option<int>("--elements")
        {
            Description = "Number of float32 elements of the parameter and of each triad array.",
            DefaultValueFactory = _ => defaults.Elements,
        };
        var repetitions = new Option<int>("--repetitions")
        {
            Description = $"Timed runs of each workload after one warm-up run, 1 to {KernelBenchSettings.MaxRepetitions}; figures are medians.",
            DefaultValueFactory = _ => defaults.Repetitions,
        };
        var threads = new Option<int>("--threads")
        {
            Description = "Threads of the multi-threaded triad and kernel figures (default: the number of logical processors); 1 leaves them out.",
            DefaultValueFactory = _ => defaults.Threads,
        };
        var python = new Option<string>("--python")
        {
            Description = "Python interpreter with PyTorch 1.13 for the torch baseline.",
            DefaultValueFactory = _ => defaults.Python,
        };
        var skipTorch = new Option<bool>("--skip-torch") { Description = "Leave out the PyTorch baseline and the figures compared with it." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per figure and line instead of a table." };

        var command = new Command(
            "kernel",
            "Time the Adam and SGD update kernels on one float32 parameter in this process, against a STREAM-style triad and PyTorch's step() on one thread.")
        {
            elements, repetitions, threads, python, skipTorch, json,
        };

        command.SetAction(parseResult =>
        {
            var settings = new KernelBenchSettings
            {
                Elements = parseResult.GetValue(elements),
                Repetitions = parseResult.GetValue(repetitions),
                Threads = parseResult.GetValue(threads),
                Python = parseResult.GetValue(python)!,
                RunTorch = !parseResult.GetValue(skipTorch),
            };

            var result = KernelBenchmark.Run(settings, Console.Error);
            bool bitsDiffer = result.Figures.Any(f => f.Measurement.BitsMatchPlain == false);
            if (parseResult.GetValue(json))
            {
                BenchReport.WriteJsonLines("kernel", result.Figures, result.LoadAverage, Console.Out);
                foreach (string note in result.Skipped)
                {
                    Console.Error.WriteLine("skipped: " + note);
                }
            }
            else
            {
                Console.WriteLine(Header(result));
                BenchReport.WriteTable(result.Figures, result.Skipped.Select(note => "skipped: " + note), Console.Out);
            }

            if (bitsDiffer)
            {
                throw new CommandException("A vectorized or chunked kernel gave different bits than the plain path (bits column DIFFER); its figures are not valid.");
            }

            return 0;
        });
        return command;
    }

    private static string Header(KernelBenchResult result)
    {
        var s = result.Settings;
        string load = result.LoadAverage is { } l ? l.ToString("F2", CultureInfo.InvariantCulture) : "unknown";
        return string.Join(
            Environment.NewLine,
            $"Kernel benchmark: {s.Elements.ToString("N0", CultureInfo.InvariantCulture)} float32 elements, median of {s.Repetitions} timed runs after one warm-up run, 1-minute load average {load} at the start.",
            $"Bytes per element: triad {StreamTriad.BytesPerElement} (reads b and c, write-allocate read and write of a), Adam {KernelBenchmark.AdamBytesPerElement} (reads p, g, m, v, writes p, m, v), SGD with momentum {KernelBenchmark.SgdBytesPerElement} (reads p, g, buf, writes p, buf).",
            "ratio: GB/s divided by the baseline's GB/s, each with its own bytes per element; against torch, whose bytes per element are the same, it is the speedup.",
            "bits: the first step of each kernel compared with the plain path's from the same state.",
            string.Empty);
    }
}
