using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Client;
using Orleans.Optim.Layout;

namespace Orleans.Optim.Cli.Bench;

/// <summary>Settings of <c>client bench step</c>.</summary>
public sealed record StepBenchSettings
{
    /// <summary>Maximum accepted <see cref="Repetitions"/>, which bounds the run time.</summary>
    public const int MaxRepetitions = 100;

    /// <summary>Maximum accepted silo count, which bounds the processes one run starts.</summary>
    public const int MaxSilos = 8;

    /// <summary>Maximum parameter count: a payload of 4 bytes per element must fit in one .NET array.</summary>
    public const int MaxElements = 250_000_000;

    /// <summary>
    /// Maximum shard size the benchmark accepts. A shard's gradient or values of 8 MiB stay far below Orleans'
    /// default <c>MaxMessageBodySize</c> of 100 MiB.
    /// </summary>
    public const int MaxShardElements = 1 << 21;

    /// <summary>Parameter counts of the model, one figure each.</summary>
    public IReadOnlyList<int> Elements { get; init; } = [10_000_000];

    /// <summary>Numbers of silo processes, one cluster each.</summary>
    public IReadOnlyList<int> Silos { get; init; } = [1, 2, 3];

    /// <summary>Number of timed steps and loopback rounds of every figure, after two untimed ones.</summary>
    public int Repetitions { get; init; } = 5;

    /// <summary>Maximum elements per shard of the benchmark's optimizer.</summary>
    public int ShardElements { get; init; } = OptimizerSpec.DefaultMaxShardElements;

    /// <summary>Path of <c>Orleans.Optim.Silo.dll</c>, or <see langword="null"/> to look for it.</summary>
    public string? SiloAssembly { get; init; }

    /// <summary>Where to write the SVG chart of the step throughput, or <see langword="null"/> for none.</summary>
    public string? ChartPath { get; init; }

    /// <summary>Throws unless every value is in range.</summary>
    /// <exception cref="ArgumentException">A value is out of range. The message names the option.</exception>
    public void Validate()
    {
        if (Elements.Count == 0 || Elements.Any(e => e < 1 || e > MaxElements))
        {
            throw new ArgumentException(
                $"Invalid --elements {string.Join(",", Elements)}: expected one or more parameter counts from 1 to {MaxElements}, such as --elements 10000000.");
        }

        if (Silos.Count == 0 || Silos.Any(s => s < 1 || s > MaxSilos))
        {
            throw new ArgumentException($"Invalid --silos {string.Join(",", Silos)}: expected one or more silo counts from 1 to {MaxSilos}, such as --silos 1,2,3.");
        }

        // Each parameter count names its optimizer in the cluster, and each silo count starts its own cluster, so a
        // value given twice would measure the same thing twice or step the same optimizer again.
        foreach (var (option, values) in new[] { ("--elements", Elements), ("--silos", Silos) })
        {
            if (values.GroupBy(v => v).FirstOrDefault(g => g.Count() > 1) is { } repeated)
            {
                throw new ArgumentException(
                    $"Invalid {option} {string.Join(",", values)}: {repeated.Key} is given more than once. Give each value once.");
            }
        }

        if (Repetitions < 1 || Repetitions > MaxRepetitions)
        {
            throw new ArgumentException($"Invalid --repetitions {Repetitions}: expected 1 to {MaxRepetitions}, such as --repetitions 5.");
        }

        if (ShardElements < 1 || ShardElements > MaxShardElements)
        {
            throw new ArgumentException($"Invalid --shard-elements {ShardElements}: expected 1 to {MaxShardElements}, such as --shard-elements {OptimizerSpec.DefaultMaxShardElements}.");
        }
    }
}

/// <summary>Figures of one step benchmark run.</summary>
/// <param name="Settings">The settings of the run.</param>
/// <param name="Figures">Each step figure with its loopback baseline, then the baselines, in the order measured.</param>
/// <param name="LoadAverage">The 1-minute load average when the run started, where the OS reports one.</param>
/// <param name="OtherCpuShare">Share of the machine's CPU time that other processes used during the run.</param>
public sealed record StepBenchResult(StepBenchSettings Settings, IReadOnlyList<BenchFigure> Figures, double? LoadAverage, double? OtherCpuShare);

/// <summary>
/// <c>client bench step</c>: times synchronous Adam steps of one worker against silos in other processes, and a plain
/// loopback TCP transfer of the same bytes in the same run.
/// </summary>
/// <remarks>
/// The model is one float32 parameter of <c>--elements</c> elements, split into shards of <c>--shard-elements</c>.
/// A step sends the gradient (4 bytes per element) to the shards and receives the new values (4 bytes per element).
/// The timed steps and loopback rounds alternate, so that a change in the machine's load affects both alike.
/// </remarks>
public static class StepBenchmark
{
    /// <summary>Payload bytes per parameter and step: the gradient in and the new value back.</summary>
    public const int BytesPerElement = 8;

    /// <summary>Target ratio: the step's payload throughput at least half of the loopback transfer's.</summary>
    public const double TargetRatio = 0.5;

    private const int WarmUpRounds = 2;

    /// <summary>Runs every configuration and returns the figures. Progress lines go to <paramref name="progress"/>.</summary>
    /// <exception cref="ArgumentException">A setting is out of range or the silo host is missing.</exception>
    public static async Task<StepBenchResult> RunAsync(StepBenchSettings settings, TextWriter progress)
    {
        settings.Validate();
        string siloAssembly = settings.SiloAssembly ?? SiloProcesses.FindSiloAssembly();
        if (!File.Exists(siloAssembly))
        {
            throw new ArgumentException($"Invalid --silo-dll '{siloAssembly}': the file does not exist. Pass the path of {SiloProcesses.SiloAssembly}.");
        }

        var load = MachineLoad.Begin();
        var steps = new List<BenchFigure>();
        var baselines = new List<Measurement>();
        foreach (int silos in settings.Silos)
        {
            await using var cluster = await BenchCluster.StartAsync(siloAssembly, silos, progress);
            foreach (int elements in settings.Elements)
            {
                var (step, tcp) = await MeasureAsync(cluster, silos, elements, settings, progress);
                steps.Add(new BenchFigure(step, tcp, TargetRatio));
                baselines.Add(tcp);
            }
        }

        var figures = steps.Concat(baselines.Select(b => new BenchFigure(b))).ToList();
        return new StepBenchResult(settings, figures, load.LoadAverage, load.End());
    }

    private static async Task<(Measurement Step, Measurement Tcp)> MeasureAsync(
        BenchCluster cluster, int silos, int elements, StepBenchSettings settings, TextWriter progress)
    {
        string count = elements.ToString("N0", CultureInfo.InvariantCulture);
        progress.WriteLine($"Creating an Adam optimizer of {count} parameters on {silos} silo(s).");
        float[] initial = BenchValues.Random(elements, seed: 1);
        float[] gradient = BenchValues.Random(elements, seed: 2);
        var spec = new OptimizerSpec
        {
            Algorithm = "Adam",
            DefaultOptions = [new("lr", 1e-3)],
            Groups = [new ParamGroupSpec([], [new ParameterSpec("weight", [elements])])],
            MaxShardElements = settings.ShardElements,
        };
        var optimizer = await ClusterOptimizer.CreateAsync(cluster.Grains, $"bench-step-{elements}", spec, [initial]);
        var statuses = await optimizer.GetShardStatusesAsync();
        int usedSilos = statuses.Select(s => s.Silo).Distinct().Count();

        // The first step is compared with the plain kernel in this process, from the same values and gradient.
        float[][] first = await optimizer.StepAsync(0, [gradient]);
        bool bitsMatch = MatchesPlainAdam(initial, gradient, first[0]);
        initial = null!;
        first = null!;
        GC.Collect();

        // The other steps write the new values into one array, as a training loop updates its parameter in place.
        float[][] values = [new float[elements]];
        using var tcp = new LoopbackTransfer((long)elements * sizeof(float));
        for (int round = 0; round < WarmUpRounds; round++)
        {
            tcp.RunRound();
            await optimizer.StepAsync(0, [gradient], values);
        }

        progress.WriteLine($"Timing {settings.Repetitions} steps and loopback rounds of {count} parameters on {silos} silo(s).");
        var stepSeconds = new List<double>();
        var tcpSeconds = new List<double>();
        var clientCpu = TimeSpan.Zero;
        var siloCpu = TimeSpan.Zero;
        var tcpCpu = TimeSpan.Zero;
        using var self = Process.GetCurrentProcess();
        for (int round = 0; round < settings.Repetitions; round++)
        {
            var tcpCpuStart = CpuTime(self);
            tcpSeconds.Add(Timing.Seconds(tcp.RunRound));
            tcpCpu += CpuTime(self) - tcpCpuStart;

            var clientCpuStart = CpuTime(self);
            var siloCpuStart = cluster.SiloCpuTime();
            long start = Stopwatch.GetTimestamp();
            await optimizer.StepAsync(0, [gradient], values);
            stepSeconds.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
            clientCpu += CpuTime(self) - clientCpuStart;
            siloCpu += cluster.SiloCpuTime() - siloCpuStart;
        }

        KeyValuePair<string, double>[] extra =
        [
            new("silos", silos),
            new("silos_with_shards", usedSilos),
            new("shards", optimizer.Layout.Shards.Count),
            new("workers", 1),
            new("payload_bytes", (double)elements * BytesPerElement),
        ];

        // CPU time per timed step or round, from the kernel's clock-tick counters (10 ms ticks on Linux), so a
        // figure is only as exact as the sum over all repetitions allows.
        double repetitions = settings.Repetitions;
        KeyValuePair<string, double>[] stepCpu =
        [
            new("client_cpu_s", clientCpu.TotalSeconds / repetitions),
            new("silo_cpu_s", siloCpu.TotalSeconds / repetitions),
        ];
        KeyValuePair<string, double>[] tcpCpuPerRound = [new("cpu_s", tcpCpu.TotalSeconds / repetitions)];
        var step = new Measurement(
            $"step.{silos}silos.{elements}",
            1,
            elements,
            BytesPerElement,
            stepSeconds,
            $"ClusterOptimizer.StepAsync into the caller's array, Adam, 1 worker, {optimizer.Layout.Shards.Count} shards on {usedSilos} of {silos} silo processes")
        {
            BitsMatchPlain = bitsMatch,
            Extra = [.. extra, .. stepCpu],
        };
        var baseline = new Measurement(
            $"tcp.{silos}silos.{elements}",
            1,
            elements,
            BytesPerElement,
            tcpSeconds,
            "plain TCP on 127.0.0.1 within this process, the payload in, then back")
        {
            Extra = [.. extra, .. tcpCpuPerRound],
        };
        return (step, baseline);
    }

    private static TimeSpan CpuTime(Process process)
    {
        process.Refresh();
        return process.TotalProcessorTime;
    }

    private static bool MatchesPlainAdam(float[] initial, float[] gradient, float[] clusterValues)
    {
        var adam = new Adam();
        var group = new Dictionary<string, object?>(adam.Defaults) { ["lr"] = 1e-3 };
        var options = adam.ParseOptions(group, 0);
        var state = adam.CreateState(options, initial.Length);
        float[] local = (float[])initial.Clone();
        adam.Step(options, state, local, gradient, KernelPath.Plain);
        return MemoryMarshal.AsBytes(local.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(clusterValues.AsSpan()));
    }
}
