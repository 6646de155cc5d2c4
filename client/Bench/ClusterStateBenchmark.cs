using System.Globalization;
using Orleans.Optim.Client;
using Orleans.Optim.Layout;

namespace Orleans.Optim.Cli.Bench;

/// <summary>Settings of <c>client bench export</c> and <c>client bench fanout</c>.</summary>
public sealed record ClusterStateBenchSettings
{
    /// <summary>Largest accepted <see cref="Elements"/>: 200 million parameters, 1.6 GB of Adam state.</summary>
    public const int MaxElements = 200_000_000;

    /// <summary>Largest accepted <see cref="Tensors"/>.</summary>
    public const int MaxTensors = 100_000;

    /// <summary>Largest accepted <see cref="Repetitions"/>, which bounds the run time.</summary>
    public const int MaxRepetitions = 20;

    /// <summary>Name of the benchmark and prefix of its figures: <c>export</c> or <c>fanout</c>.</summary>
    public required string Benchmark { get; init; }

    /// <summary>Number of parameters (float32 elements) over all tensors.</summary>
    public int Elements { get; init; } = 50_000_000;

    /// <summary>Number of parameter tensors that share <see cref="Elements"/> as evenly as they can.</summary>
    public int Tensors { get; init; } = 1;

    /// <summary>Maximum elements per shard.</summary>
    public int ShardElements { get; init; } = OptimizerSpec.DefaultMaxShardElements;

    /// <summary>Number of timed runs of each figure after one untimed run.</summary>
    public int Repetitions { get; init; } = 3;

    /// <summary>Whether to time <c>state_dict</c> (gathered into this process) as well as the streamed <c>.pt</c> save.</summary>
    public bool IncludeStateDict { get; init; }

    /// <summary>Folder of the files the saves write and delete; <see langword="null"/> for a new temporary folder.</summary>
    public string? OutputFolder { get; init; }

    /// <summary>Interpreter that runs the PyTorch baseline.</summary>
    public string Python { get; init; } = TorchBaseline.DefaultInterpreter;

    /// <summary>Whether to run the PyTorch baseline.</summary>
    public bool RunTorch { get; init; } = true;

    /// <summary>Maximum time of the PyTorch child process.</summary>
    public TimeSpan TorchTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Bytes of Adam's state tensors (<c>exp_avg</c> and <c>exp_avg_sq</c>, float32).</summary>
    public long StateBytes => (long)Elements * ClusterStateBenchmark.StateBytesPerElement;

    /// <summary>Number of elements of each tensor: the first <c>Elements % Tensors</c> tensors get one more.</summary>
    public int[] TensorSizes() =>
        [.. Enumerable.Range(0, Tensors).Select(i => Elements / Tensors + (i < Elements % Tensors ? 1 : 0))];

    /// <summary>Throws unless every value is in range.</summary>
    /// <exception cref="ArgumentException">A value is out of range. The message names the option.</exception>
    public void Validate()
    {
        if (Elements < 1 || Elements > MaxElements)
        {
            throw new ArgumentException($"Invalid --elements {Elements}: expected 1 to {MaxElements} parameters.");
        }

        if (Tensors < 1 || Tensors > MaxTensors)
        {
            throw new ArgumentException($"Invalid --tensors {Tensors}: expected 1 to {MaxTensors}.");
        }

        if (Tensors > Elements)
        {
            throw new ArgumentException($"Invalid --tensors {Tensors}: every tensor needs at least one of the {Elements} elements (--elements); give at most {Elements} tensors.");
        }

        if (ShardElements < 1)
        {
            throw new ArgumentException($"Invalid --shard-elements {ShardElements}: expected at least 1.");
        }

        if (Repetitions < 1 || Repetitions > MaxRepetitions)
        {
            throw new ArgumentException($"Invalid --repetitions {Repetitions}: expected 1 to {MaxRepetitions}.");
        }

        if (OutputFolder is not null && !Directory.Exists(OutputFolder))
        {
            throw new ArgumentException($"Invalid --output '{OutputFolder}': the folder does not exist. Create it, or leave out --output for a temporary folder.");
        }
    }
}

/// <summary>Peak memory growth of this process during the runs of one figure.</summary>
/// <param name="PeakGrowthBytes">Largest growth of the peak resident set size over one run, over all timed runs.</param>
/// <param name="FirstRunGrowthBytes">
/// The same for the untimed first run, which also grows the buffer pools that later runs reuse.
/// </param>
/// <param name="StateBytes">Bytes of the optimizer's state tensors.</param>
/// <param name="PeakReset">Whether the peak was reset before each run; without it the growth is an upper bound.</param>
/// <param name="TargetFraction">The target for <see cref="Fraction"/>, if the figure has one.</param>
public sealed record MemoryGrowth(long PeakGrowthBytes, long FirstRunGrowthBytes, long StateBytes, bool PeakReset, double? TargetFraction)
{
    /// <summary>The growth as a fraction of the state's size.</summary>
    public double Fraction => (double)PeakGrowthBytes / StateBytes;

    /// <summary>Whether <see cref="Fraction"/> is within <see cref="TargetFraction"/>; <see langword="null"/> without a target.</summary>
    public bool? MeetsTarget => TargetFraction is { } target ? Fraction <= target : null;
}

/// <summary>A figure of the export and fan-out benchmarks, with the memory growth of its runs where measured.</summary>
public sealed record ClusterStateFigure(BenchFigure Figure, MemoryGrowth? Memory);

/// <summary>Figures of one export or fan-out run.</summary>
/// <param name="Settings">The settings of the run.</param>
/// <param name="Figures">The figures in the order they were measured.</param>
/// <param name="Skipped">One sentence per skipped figure.</param>
/// <param name="LoadAverage">The 1-minute load average when the run started, where the OS reports one.</param>
/// <param name="ShardCount">Number of shards of the optimizer.</param>
public sealed record ClusterStateBenchResult(
    ClusterStateBenchSettings Settings, IReadOnlyList<ClusterStateFigure> Figures, IReadOnlyList<string> Skipped, double? LoadAverage, int ShardCount);

/// <summary>
/// <c>client bench export</c> and <c>client bench fanout</c>: take the state of an Adam optimizer held by a cluster,
/// as a <c>.pt</c> file streamed shard by shard (<c>ClusterOptimizer.SaveAsync</c>) and optionally as a state dict
/// gathered into this process (<c>StateDictAsync</c>), against <c>torch.save</c> of the same state in the same run.
/// </summary>
public static class ClusterStateBenchmark
{
    /// <summary>Bytes of Adam's state tensors per parameter: <c>exp_avg</c> and <c>exp_avg_sq</c>, float32 each.</summary>
    public const int StateBytesPerElement = 8;

    /// <summary>Target of the export: the streamed save at least as fast as <c>torch.save</c>.</summary>
    public const double ExportTargetRatio = 1.0;

    /// <summary>Target of the export: the exporting process grows by at most this fraction of the state's size.</summary>
    public const double ExportMemoryTarget = 0.25;

    /// <summary>Target of the fan-out: <c>state_dict</c> within twice the time of <c>torch.save</c>.</summary>
    public const double FanoutTargetRatio = 0.5;

    /// <summary>Name of the baseline figure.</summary>
    public const string TorchFigure = "torch.save";

    /// <summary>Name of the baseline figure that flushes the file to the disk, as <c>SaveAsync</c> does by default.</summary>
    public const string TorchFsyncFigure = "torch.save.fsync";

    /// <summary>Creates the optimizer, runs the baseline and the timed runs, and returns the figures.</summary>
    /// <remarks>
    /// PyTorch runs first, in its own process. Then the optimizer is created with one step's state, and each figure
    /// takes one untimed run and <see cref="ClusterStateBenchSettings.Repetitions"/> timed runs. Before each run a
    /// compacting full collection returns free memory to the OS, and the peak resident set size is reset, so that
    /// the peak after the run measures what the run itself needed.
    /// </remarks>
    /// <exception cref="ArgumentException">A setting is out of range.</exception>
    public static async Task<ClusterStateBenchResult> RunAsync(ClusterStateBenchSettings settings, IGrainFactory grains, TextWriter progress)
    {
        settings.Validate();
        double? loadAverage = ReadLoadAverage();
        var skipped = new List<string>();
        int[] sizes = settings.TensorSizes();
        string folder = settings.OutputFolder ?? Directory.CreateTempSubdirectory("orleans-optim-bench-" + settings.Benchmark + "-").FullName;
        try
        {
            var (torch, torchFsync) = MeasureTorch(settings, sizes, folder, progress, skipped);
            var optimizer = await CreateOptimizerAsync(settings, sizes, grains, progress);

            var figures = new List<ClusterStateFigure>();
            if (torch is not null && torchFsync is not null)
            {
                figures.Add(new ClusterStateFigure(new BenchFigure(torch), null));
                figures.Add(new ClusterStateFigure(new BenchFigure(torchFsync), null));
            }

            bool isExport = settings.Benchmark == "export";
            double targetRatio = isExport ? ExportTargetRatio : FanoutTargetRatio;
            if (settings.IncludeStateDict)
            {
                progress.WriteLine($"Timing state_dict: 1 untimed and {settings.Repetitions} timed runs.");
                var (seconds, memory) = await TimeRunsAsync(settings, async () => { _ = await optimizer.StateDictAsync(); }, targetFraction: null);
                var measurement = new Measurement(
                    settings.Benchmark + ".state_dict", Environment.ProcessorCount, settings.Elements, StateBytesPerElement, seconds,
                    "ClusterOptimizer.StateDictAsync: every shard's state gathered into this process");
                figures.Add(new ClusterStateFigure(new BenchFigure(measurement, torch, isExport ? null : FanoutTargetRatio), memory));
            }

            string path = Path.Combine(folder, "optimizer.pt");
            foreach (bool flush in (bool[])[false, true])
            {
                string figure = settings.Benchmark + (flush ? ".save" : ".save.nofsync");
                progress.WriteLine($"Timing {figure}: 1 untimed and {settings.Repetitions} timed runs.");
                var (seconds, memory) = await TimeRunsAsync(
                    settings,
                    async () =>
                    {
                        await optimizer.SaveAsync(path, flushToDisk: flush);
                        File.Delete(path);
                    },
                    targetFraction: isExport ? ExportMemoryTarget : null);
                var measurement = new Measurement(
                    figure, Environment.ProcessorCount, settings.Elements, StateBytesPerElement, seconds,
                    $"ClusterOptimizer.SaveAsync(flushToDisk: {(flush ? "true" : "false")}): the .pt file streamed from the shards in ranges of at most 64 KiB");
                figures.Add(new ClusterStateFigure(new BenchFigure(measurement, flush ? torchFsync : torch, targetRatio), memory));
            }

            return new ClusterStateBenchResult(settings, figures, skipped, loadAverage, optimizer.Layout.Shards.Count);
        }
        finally
        {
            if (settings.OutputFolder is null)
            {
                Directory.Delete(folder, recursive: true);
            }
        }
    }

    private static (Measurement? Save, Measurement? SaveFsync) MeasureTorch(ClusterStateBenchSettings settings, int[] sizes, string folder, TextWriter progress, List<string> skipped)
    {
        if (!settings.RunTorch)
        {
            skipped.Add($"{TorchFigure} and {TorchFsyncFigure}: --skip-torch was given.");
            return (null, null);
        }

        progress.WriteLine($"Running torch.save through {settings.Python}: 2 untimed and {settings.Repetitions} timed saves with and without fsync.");
        var timings = TorchSaveBaseline.TryMeasure(settings.Python, sizes, settings.Repetitions, Path.Combine(folder, "torch.pt"), settings.TorchTimeout, out string? reason);
        if (timings is null)
        {
            skipped.Add($"{TorchFigure} and {TorchFsyncFigure}: {reason}");
            return (null, null);
        }

        return (
            new Measurement(
                TorchFigure, 1, settings.Elements, StateBytesPerElement, timings.SaveSeconds,
                $"torch {timings.TorchVersion}: torch.save(Adam.state_dict(), path), {timings.FileBytes} bytes"),
            new Measurement(
                TorchFsyncFigure, 1, settings.Elements, StateBytesPerElement, timings.SaveFsyncSeconds,
                $"torch {timings.TorchVersion}: torch.save(Adam.state_dict(), path), then os.fsync of the file"));
    }

    private static async Task<ClusterOptimizer> CreateOptimizerAsync(ClusterStateBenchSettings settings, int[] sizes, IGrainFactory grains, TextWriter progress)
    {
        string name = $"bench-{settings.Benchmark}-{Guid.NewGuid():N}";
        progress.WriteLine(
            $"Creating Adam optimizer '{name}': {settings.Elements.ToString("N0", CultureInfo.InvariantCulture)} parameters in {sizes.Length.ToString("N0", CultureInfo.InvariantCulture)} tensor(s), shards of at most {settings.ShardElements.ToString("N0", CultureInfo.InvariantCulture)} elements, and one step.");
        var spec = new OptimizerSpec
        {
            Algorithm = "Adam",
            DefaultOptions = [new("lr", 1e-3)],
            Groups = [new ParamGroupSpec([], [.. sizes.Select(size => new ParameterSpec(null, [size]))])],
            MaxShardElements = settings.ShardElements,
        };

        // Tensors of one size share one array: the client sends each shard its slice and keeps nothing.
        var values = sizes.Distinct().ToDictionary(size => size, size => Enumerable.Repeat(0.5f, size).ToArray());
        var gradients = sizes.Distinct().ToDictionary(size => size, size => Enumerable.Repeat(0.25f, size).ToArray());
        var optimizer = await ClusterOptimizer.CreateAsync(grains, name, spec, [.. sizes.Select(size => values[size])]);
        await optimizer.StepAsync(0, [.. sizes.Select(size => gradients[size])]);
        return optimizer;
    }

    private static async Task<(double[] Seconds, MemoryGrowth? Memory)> TimeRunsAsync(ClusterStateBenchSettings settings, Func<Task> run, double? targetFraction)
    {
        var (_, firstGrowth, firstReset) = await MeasureRunAsync(run);
        var seconds = new double[settings.Repetitions];
        long maxGrowth = 0;
        bool peakReset = firstReset;
        for (int i = 0; i < seconds.Length; i++)
        {
            var (elapsed, growth, reset) = await MeasureRunAsync(run);
            seconds[i] = elapsed;
            maxGrowth = Math.Max(maxGrowth, growth);
            peakReset &= reset;
        }

        var memory = ProcessMemory.IsAvailable ? new MemoryGrowth(maxGrowth, firstGrowth, settings.StateBytes, peakReset, targetFraction) : null;
        return (seconds, memory);
    }

    /// <summary>Runs once after a full collection and returns the time and the growth of the peak resident set size.</summary>
    private static async Task<(double Seconds, long Growth, bool PeakReset)> MeasureRunAsync(Func<Task> run)
    {
        ProcessMemory.Settle();
        bool available = ProcessMemory.IsAvailable;
        long before = available ? ProcessMemory.ResidentBytes() : 0;
        bool reset = available && ProcessMemory.TryResetPeak();
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        await run();
        double seconds = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
        long growth = available ? ProcessMemory.PeakResidentBytes() - before : 0;
        return (seconds, growth, reset);
    }

    // The first field of /proc/loadavg; null where the file does not exist or cannot be read.
    private static double? ReadLoadAverage()
    {
        try
        {
            string text = File.ReadAllText("/proc/loadavg");
            return double.Parse(text.Split(' ')[0], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }
}
