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
        command.Subcommands.Add(CreateStep());
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

    private static Command CreateStep()
    {
        var defaults = new StepBenchSettings();
        var elements = new Option<string>("--elements")
        {
            Description = "Parameter counts of the model, comma-separated, one figure each; the model is one float32 parameter of that many elements.",
            DefaultValueFactory = _ => string.Join(",", defaults.Elements),
        };
        var silos = new Option<string>("--silos")
        {
            Description = $"Numbers of silo processes, comma-separated, one cluster each, 1 to {StepBenchSettings.MaxSilos}.",
            DefaultValueFactory = _ => string.Join(",", defaults.Silos),
        };
        var repetitions = new Option<int>("--repetitions")
        {
            Description = $"Timed steps and loopback rounds of each figure after two untimed ones, 1 to {StepBenchSettings.MaxRepetitions}; figures are medians.",
            DefaultValueFactory = _ => defaults.Repetitions,
        };
        var shardElements = new Option<int>("--shard-elements")
        {
            Description = $"Maximum elements per shard, 1 to {StepBenchSettings.MaxShardElements}.",
            DefaultValueFactory = _ => defaults.ShardElements,
        };
        var siloDll = SiloDllOption();
        var chart = new Option<string?>("--chart")
        {
            Description = "Write an SVG chart of the step throughput against the silo count and the parameter count to this file.",
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per figure and line instead of a table." };

        var command = new Command(
            "step",
            "Time synchronous Adam steps of one worker against silo processes on 127.0.0.1, against a plain loopback TCP transfer of the same bytes.")
        {
            elements, silos, repetitions, shardElements, siloDll, chart, json,
        };

        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var settings = new StepBenchSettings
            {
                Elements = ParseCounts(parseResult.GetValue(elements)!, "--elements", "10000000"),
                Silos = ParseCounts(parseResult.GetValue(silos)!, "--silos", "1,2,3"),
                Repetitions = parseResult.GetValue(repetitions),
                ShardElements = parseResult.GetValue(shardElements),
                SiloAssembly = parseResult.GetValue(siloDll),
                ChartPath = parseResult.GetValue(chart),
            };

            var result = await StepBenchmark.RunAsync(settings, Console.Error);
            if (parseResult.GetValue(json))
            {
                BenchReport.WriteJsonLines("step", result.Figures, result.LoadAverage, Console.Out, result.OtherCpuShare);
            }
            else
            {
                Console.WriteLine(
                    $"Step benchmark: Adam, one worker, payload {StepBenchmark.BytesPerElement} bytes per parameter (gradient in, value back), " +
                    $"median of {settings.Repetitions} timed runs after two warm-up runs. {LoadLine(result.LoadAverage, result.OtherCpuShare)}");
                Console.WriteLine("ratio: the step's payload GB/s divided by the loopback transfer's; bits: the first step compared with the plain Adam kernel in this process.");
                Console.WriteLine();
                BenchReport.WriteTable(result.Figures, CpuNotes(result.Figures), Console.Out);
            }

            if (settings.ChartPath is { } path)
            {
                StepChart.WriteSvg(path, result.Figures);
                Console.Error.WriteLine($"Wrote the chart to {Path.GetFullPath(path)}.");
            }

            if (result.Figures.Any(f => f.Measurement.BitsMatchPlain == false))
            {
                throw new CommandException("A cluster step gave different bits than the plain Adam kernel (bits column DIFFER); its figures are not valid.");
            }

            return 0;
        });
        return command;
    }

    private static Option<string?> SiloDllOption() => new("--silo-dll")
    {
        Description = $"Path of the silo host {SiloProcesses.SiloAssembly} (default: next to this program, or silo/bin of the same configuration).",
    };

    /// <summary>Parses a comma-separated list of whole numbers, such as <c>1,2,3</c>.</summary>
    /// <exception cref="ArgumentException">An item is not a whole number; the message names it and gives an example.</exception>
    internal static int[] ParseCounts(string text, string option, string example)
    {
        var counts = new List<int>();
        foreach (string item in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(item, NumberStyles.None, CultureInfo.InvariantCulture, out int count))
            {
                throw new ArgumentException($"Invalid {option} '{text}': '{item}' is not a whole number. Give comma-separated whole numbers, such as {option} {example}.");
            }

            counts.Add(count);
        }

        return [.. counts];
    }

    /// <summary>Returns one line per step figure with the CPU time of a step and of its loopback round.</summary>
    private static IEnumerable<string> CpuNotes(IReadOnlyList<BenchFigure> figures)
    {
        foreach (var figure in figures.Where(f => f.Baseline is not null))
        {
            double Extra(Measurement m, string key) => m.Extra.FirstOrDefault(e => e.Key == key).Value * 1e3;
            var step = figure.Measurement;
            yield return FormattableString.Invariant(
                $"{step.Name}: CPU per step {Extra(step, "client_cpu_s"):F0} ms in the client and {Extra(step, "silo_cpu_s"):F0} ms in the silos; CPU per loopback round {Extra(figure.Baseline!, "cpu_s"):F0} ms.");
        }
    }

    private static string LoadLine(double? loadAverage, double? otherCpuShare)
    {
        string load = loadAverage is { } l ? l.ToString("F2", CultureInfo.InvariantCulture) : "unknown";
        string other = otherCpuShare is { } o ? (o * 100).ToString("F0", CultureInfo.InvariantCulture) + "%" : "unknown";
        return $"1-minute load average {load} at the start; other processes used {other} of the CPU time during the run.";
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
