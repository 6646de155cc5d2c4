namespace Orleans.Optim.Cli.Bench;

/// <summary>
/// Timings of one workload: repeated runs over <see cref="Elements"/> float32 elements after a warm-up.
/// </summary>
/// <param name="Name">Name of the workload, such as <c>adam.vectorized.1t</c>.</param>
/// <param name="Threads">Number of threads the workload ran on.</param>
/// <param name="Elements">Number of elements per run.</param>
/// <param name="BytesPerElement">Bytes that one run moves to or from memory per element, by the workload's own accounting.</param>
/// <param name="Seconds">Wall-clock time of each timed run, in seconds.</param>
/// <param name="Detail">What ran, such as the vector width or the torch version.</param>
public sealed record Measurement(string Name, int Threads, long Elements, int BytesPerElement, IReadOnlyList<double> Seconds, string Detail)
{
    /// <summary>
    /// Whether the warm-up step gave the same bits as the plain path from the same state. It is <see langword="null"/>
    /// for workloads that are not update kernels of this project.
    /// </summary>
    public bool? BitsMatchPlain { get; init; }

    /// <summary>
    /// Further numbers of the figure, written as extra JSON fields in this order, such as <c>silos</c> or
    /// <c>peak_memory_growth_bytes</c>. Empty for the kernel figures.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, double>> Extra { get; init; } = [];

    /// <summary>Median of <see cref="Seconds"/>. For an even count, the mean of the two middle values.</summary>
    public double MedianSeconds
    {
        get
        {
            double[] sorted = [.. Seconds.Order()];
            int middle = sorted.Length / 2;
            return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
        }
    }

    /// <summary>Shortest run, in seconds.</summary>
    public double MinSeconds => Seconds.Min();

    /// <summary>Longest run, in seconds.</summary>
    public double MaxSeconds => Seconds.Max();

    /// <summary>Effective memory bandwidth of the median run in GB/s (10^9 bytes per second).</summary>
    public double GigabytesPerSecond => (double)BytesPerElement * Elements / MedianSeconds / 1e9;
}

/// <summary>
/// One figure of a benchmark: a measurement, optionally compared with a baseline from the same run.
/// </summary>
/// <param name="Measurement">The measured workload.</param>
/// <param name="Baseline">The workload it is compared with, or <see langword="null"/> for a baseline itself.</param>
/// <param name="TargetRatio">The project's target for <see cref="Ratio"/>, if it has one.</param>
public sealed record BenchFigure(Measurement Measurement, Measurement? Baseline = null, double? TargetRatio = null)
{
    /// <summary>
    /// Effective bandwidth of the measurement divided by the baseline's, each with its own bytes per element. With
    /// equal bytes per element this is the baseline's median time divided by the measurement's (the speedup).
    /// </summary>
    public double? Ratio => Baseline is null ? null : Measurement.GigabytesPerSecond / Baseline.GigabytesPerSecond;

    /// <summary>Whether <see cref="Ratio"/> reaches <see cref="TargetRatio"/>; <see langword="null"/> without a target.</summary>
    public bool? MeetsTarget => TargetRatio is null || Ratio is null ? null : Ratio >= TargetRatio;
}
