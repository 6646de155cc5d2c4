using System.Globalization;
using System.Runtime.Intrinsics;
using Orleans.Optim.Algorithms;

namespace Orleans.Optim.Cli.Bench;

/// <summary>Settings of <c>client bench kernel</c>.</summary>
public sealed record KernelBenchSettings
{
    /// <summary>Largest accepted <see cref="Repetitions"/>, which bounds the run time.</summary>
    public const int MaxRepetitions = 100;

    /// <summary>Number of float32 elements of every workload.</summary>
    public int Elements { get; init; } = 50_000_000;

    /// <summary>Number of timed runs of every workload after its warm-up run.</summary>
    public int Repetitions { get; init; } = 5;

    /// <summary>Threads of the multi-threaded triad and kernel figures. With 1, those figures are left out.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Interpreter that runs the PyTorch baseline.</summary>
    public string Python { get; init; } = TorchBaseline.DefaultInterpreter;

    /// <summary>Whether to run the PyTorch baseline.</summary>
    public bool RunTorch { get; init; } = true;

    /// <summary>Maximum time of the PyTorch child process.</summary>
    public TimeSpan TorchTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Throws unless every value is in range.</summary>
    /// <exception cref="ArgumentException">A value is out of range. The message names the option.</exception>
    public void Validate()
    {
        if (Elements < 1 || Elements > Array.MaxLength)
        {
            throw new ArgumentException($"Invalid --elements {Elements}: expected 1 to {Array.MaxLength}.");
        }

        if (Repetitions < 1 || Repetitions > MaxRepetitions)
        {
            throw new ArgumentException($"Invalid --repetitions {Repetitions}: expected 1 to {MaxRepetitions}.");
        }

        if (Threads < 1)
        {
            throw new ArgumentException($"Invalid --threads {Threads}: expected at least 1.");
        }
    }
}

/// <summary>Figures of one kernel benchmark run, with the workloads it skipped and why.</summary>
/// <param name="Settings">The settings of the run.</param>
/// <param name="Figures">The figures in the order they were measured.</param>
/// <param name="Skipped">One sentence per skipped workload.</param>
/// <param name="LoadAverage">The 1-minute load average when the run started, where the OS reports one.</param>
public sealed record KernelBenchResult(KernelBenchSettings Settings, IReadOnlyList<BenchFigure> Figures, IReadOnlyList<string> Skipped, double? LoadAverage);

/// <summary>
/// <c>client bench kernel</c>: times the Adam and SGD update kernels on one large slice in this process, against a
/// STREAM-style triad (memory bandwidth) and PyTorch 1.13's <c>step()</c> on one thread.
/// </summary>
public static class KernelBenchmark
{
    /// <summary>Bytes Adam moves per parameter: reads p, g, m and v, writes p, m and v.</summary>
    public const int AdamBytesPerElement = 28;

    /// <summary>Bytes SGD with momentum moves per parameter: reads p, g and buf, writes p and buf.</summary>
    public const int SgdBytesPerElement = 20;

    /// <summary>Target of the plan: our Adam kernel at least 8 times as fast as torch's on one thread.</summary>
    public const double TorchSpeedupTarget = 8;

    /// <summary>Target of the plan: the kernels reach at least 90% of the triad's bandwidth.</summary>
    public const double BandwidthTarget = 0.9;

    // At its peak the benchmark has 13 arrays of --elements floats allocated: the triad's 3, the gradient, Adam's p,
    // m and v, and two more copies of them while the Adam kernels' bits are checked.
    private const int PeakArraysPerElement = 13;

    // The multi-threaded kernels split the slice into chunks of at least this many elements, so that even a small
    // --elements runs on every requested thread.
    private const int MinBenchChunkElements = 64;

    /// <summary>Runs every workload and returns the figures. Progress lines go to <paramref name="progress"/>.</summary>
    /// <remarks>
    /// PyTorch runs first, in its own process. Then every C# workload takes one untimed run, and the timed runs go
    /// in rounds. Each round runs every workload once, so that a change in the machine's load during the run affects
    /// every figure alike.
    /// </remarks>
    /// <exception cref="ArgumentException">A setting is out of range, or the workloads need more memory than is available.</exception>
    public static KernelBenchResult Run(KernelBenchSettings settings, TextWriter progress)
    {
        settings.Validate();
        CheckMemory(settings.Elements);
        double? loadAverage = ReadLoadAverage();
        var skipped = new List<string>();
        int n = settings.Elements;
        int threads = settings.Threads;
        if (threads == 1)
        {
            skipped.Add("Multi-threaded figures: --threads is 1.");
        }

        if (!Vector512.IsHardwareAccelerated)
        {
            skipped.Add("512-bit figures: Vector512 is not hardware accelerated on this machine.");
        }

        var (torchAdam, torchSgd) = MeasureTorch(settings, progress, skipped);

        progress.WriteLine($"Preparing the workloads on {n.ToString("N0", CultureInfo.InvariantCulture)} elements and checking the kernels' bits.");
        WarmUpKernels(threads);
        var parallelism = new KernelParallelism(threads, minChunkElements: MinBenchChunkElements);
        float[] grad = RandomValues(n, seed: 2);
        var triad = new StreamTriad(n);
        var triadVariants = TriadVariants(triad, threads);

        var adam = new Adam();
        var adamWorkload = new KernelWorkload(adam, adam.ParseOptions(WithDefaults(adam, ("lr", 1e-3)), 0), RandomValues(n, seed: 1), grad);
        var adamVariants = KernelVariants("adam", adamWorkload, AdamBytesPerElement, threads, parallelism);

        var sgd = new Sgd();
        var sgdWorkload = new KernelWorkload(sgd, sgd.ParseOptions(WithDefaults(sgd, ("lr", 1e-3), ("momentum", 0.9)), 0), RandomValues(n, seed: 1), grad);
        var sgdVariants = KernelVariants("sgd", sgdWorkload, SgdBytesPerElement, threads, parallelism);

        progress.WriteLine($"Timing {settings.Repetitions} rounds.");
        Variant[] all = [.. triadVariants.SelectMany(widths => widths), .. adamVariants, .. sgdVariants];
        RunRounds(all, settings.Repetitions);

        var figures = new List<BenchFigure>();
        var triads = triadVariants.Select(widths => FasterTriad(widths, n)).ToList();
        figures.AddRange(triads.Select(t => new BenchFigure(t)));
        if (torchAdam is not null && torchSgd is not null)
        {
            figures.Add(new BenchFigure(torchAdam));
            figures.Add(new BenchFigure(torchSgd));
        }

        AddKernelFigures(figures, adamVariants, n, triads, torchAdam, TorchSpeedupTarget);
        AddKernelFigures(figures, sgdVariants, n, triads, torchSgd, null);
        return new KernelBenchResult(settings, figures, skipped, loadAverage);
    }

    private static (Measurement? Adam, Measurement? Sgd) MeasureTorch(KernelBenchSettings settings, TextWriter progress, List<string> skipped)
    {
        if (!settings.RunTorch)
        {
            skipped.Add("torch.adam.1t and torch.sgd.1t: --skip-torch was given.");
            return (null, null);
        }

        progress.WriteLine($"Measuring PyTorch through {settings.Python}.");
        var torch = TorchBaseline.TryMeasure(settings.Python, settings.Elements, settings.Repetitions, settings.TorchTimeout, out string? reason);
        if (torch is null)
        {
            skipped.Add($"torch.adam.1t and torch.sgd.1t: {reason}");
            return (null, null);
        }

        string detail = $"torch {torch.TorchVersion}, CPU capability {torch.CpuCapability}, torch.set_num_threads(1)";
        return (
            new Measurement("torch.adam.1t", 1, settings.Elements, AdamBytesPerElement, torch.AdamSeconds, detail),
            new Measurement("torch.sgd.1t", 1, settings.Elements, SgdBytesPerElement, torch.SgdSeconds, detail));
    }

    // Returns one list per thread count (1, and --threads when it is more), each with one variant per vector width.
    private static List<List<Variant>> TriadVariants(StreamTriad triad, int threads)
    {
        int[] threadCounts = threads > 1 ? [1, threads] : [1];
        bool[] widths = Vector512.IsHardwareAccelerated ? [false, true] : [false];
        return threadCounts
            .Select(count => widths
                .Select(wide => new Variant(
                    $"triad.{count}t", count, StreamTriad.BytesPerElement, wide ? "512-bit vectors" : "256-bit vectors", () => triad.Run(count, wide)))
                .ToList())
            .ToList();
    }

    private static List<Variant> KernelVariants(string prefix, KernelWorkload workload, int bytesPerElement, int threads, KernelParallelism parallelism)
    {
        var variants = new List<Variant>
        {
            KernelVariant($"{prefix}.plain.1t", "KernelPath.Plain, one element at a time", workload, bytesPerElement, KernelPath.Plain, KernelParallelism.None),
            KernelVariant($"{prefix}.vectorized.1t", "KernelPath.Vectorized, 256-bit vectors", workload, bytesPerElement, KernelPath.Vectorized, KernelParallelism.None),
        };
        if (Vector512.IsHardwareAccelerated)
        {
            variants.Add(KernelVariant(
                $"{prefix}.vectorized512.1t", "KernelPath.Vectorized512, 512-bit vectors", workload, bytesPerElement, KernelPath.Vectorized512, KernelParallelism.None));
        }

        if (threads > 1)
        {
            variants.Add(KernelVariant(
                $"{prefix}.vectorized.{threads}t",
                $"KernelPath.Vectorized, {parallelism.ChunkCount(workload.Elements)} chunks on up to {threads} threads",
                workload,
                bytesPerElement,
                KernelPath.Vectorized,
                parallelism));
        }

        workload.EndBitChecks();
        return variants;
    }

    // Checks the path's bits when the variant is created, because the checks must run before the first timed step.
    private static Variant KernelVariant(string name, string detail, KernelWorkload workload, int bytesPerElement, KernelPath path, KernelParallelism parallelism) =>
        new(name, parallelism.ChunkCount(workload.Elements), bytesPerElement, detail, () => workload.Step(path, parallelism))
        {
            BitsMatchPlain = workload.CheckBits(path, parallelism),
        };

    // Runs one untimed round, then the timed rounds.
    private static void RunRounds(Variant[] variants, int repetitions)
    {
        foreach (var variant in variants)
        {
            variant.Run();
        }

        for (int round = 0; round < repetitions; round++)
        {
            foreach (var variant in variants)
            {
                variant.Seconds.Add(Timing.Seconds(variant.Run));
            }
        }
    }

    // The faster vector width is the baseline, and the detail names the bandwidth of both.
    private static Measurement FasterTriad(List<Variant> widths, int elements)
    {
        var measurements = widths.Select(v => v.ToMeasurement(elements)).ToList();
        var best = measurements.MinBy(m => m.MedianSeconds)!;
        string bandwidths = string.Join(" and ", measurements.Select(m => $"{m.Detail} {m.GigabytesPerSecond:F1} GB/s"));
        return best with { Detail = $"{best.Detail}, the faster of {bandwidths}" };
    }

    // Compares each single-threaded kernel with torch on one thread (the plain path too, without a target), and each
    // vectorized kernel with the triad of its thread count.
    private static void AddKernelFigures(
        List<BenchFigure> figures, List<Variant> variants, int elements, List<Measurement> triads, Measurement? torch, double? torchTarget)
    {
        foreach (var variant in variants)
        {
            var measurement = variant.ToMeasurement(elements);
            bool plain = variant.Name.Contains(".plain.", StringComparison.Ordinal);
            if (torch is not null && variant.Threads == 1)
            {
                figures.Add(new BenchFigure(measurement, torch, plain ? null : torchTarget));
            }

            if (!plain)
            {
                var triad = variant.Threads > 1 ? triads[^1] : triads[0];
                figures.Add(new BenchFigure(measurement, triad, BandwidthTarget));
            }
        }
    }

    // Runs every kernel path on a small slice, so that the first timed step measures no JIT compilation. Adam's and
    // SGD's loops are compiled fully optimized at their first call. The code around them tiers up after 30 calls and
    // a quiet period of 100 ms by default, as in a long-running shard.
    private static void WarmUpKernels(int threads)
    {
        const int Elements = 4096;
        var adam = new Adam();
        var adamOptions = adam.ParseOptions(WithDefaults(adam, ("lr", 1e-3)), 0);
        var sgd = new Sgd();
        var sgdOptions = sgd.ParseOptions(WithDefaults(sgd, ("lr", 1e-3), ("momentum", 0.9)), 0);
        float[] param = RandomValues(Elements, seed: 3);
        float[] grad = RandomValues(Elements, seed: 4);
        var adamState = adam.CreateState(adamOptions, Elements);
        var sgdState = sgd.CreateState(sgdOptions, Elements);
        var parallelism = new KernelParallelism(threads, minChunkElements: MinBenchChunkElements);

        for (int round = 0; round < 2; round++)
        {
            for (int call = 0; call < 50; call++)
            {
                foreach (var path in Enum.GetValues<KernelPath>())
                {
                    adam.Step(adamOptions, adamState, param, grad, path, KernelParallelism.None);
                    sgd.Step(sgdOptions, sgdState, param, grad, path, KernelParallelism.None);
                }

                adam.Step(adamOptions, adamState, param, grad, KernelPath.Vectorized, parallelism);
                sgd.Step(sgdOptions, sgdState, param, grad, KernelPath.Vectorized, parallelism);
            }

            Thread.Sleep(250);
        }
    }

    private static Dictionary<string, object?> WithDefaults(OptimizerAlgorithm algorithm, params (string Key, object? Value)[] values)
    {
        var group = new Dictionary<string, object?>(algorithm.Defaults);
        foreach (var (key, value) in values)
        {
            group[key] = value;
        }

        return group;
    }

    // Uniform values in [-1, 1), the same for the same seed.
    private static float[] RandomValues(int length, int seed)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = random.NextSingle() * 2 - 1;
        }

        return values;
    }

    private static void CheckMemory(int elements)
    {
        long needed = (long)elements * sizeof(float) * PeakArraysPerElement;
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (needed > available)
        {
            throw new ArgumentException(
                $"--elements {elements} needs about {needed / 1e9:F1} GB, but {available / 1e9:F1} GB are available; give a smaller --elements.");
        }
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

    /// <summary>One timed workload: its figure's name and accounting, and its run times.</summary>
    private sealed class Variant(string name, int threads, int bytesPerElement, string detail, Action run)
    {
        public string Name { get; } = name;

        public int Threads { get; } = threads;

        public Action Run { get; } = run;

        public List<double> Seconds { get; } = [];

        public bool? BitsMatchPlain { get; init; }

        public Measurement ToMeasurement(int elements) =>
            new(Name, Threads, elements, bytesPerElement, Seconds, detail) { BitsMatchPlain = BitsMatchPlain };
    }
}
