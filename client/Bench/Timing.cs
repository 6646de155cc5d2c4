using System.Diagnostics;

namespace Orleans.Optim.Cli.Bench;

/// <summary>Wall-clock timing of one run of a workload.</summary>
public static class Timing
{
    /// <summary>Runs <paramref name="run"/> once and returns its wall-clock time in seconds.</summary>
    public static double Seconds(Action run)
    {
        long start = Stopwatch.GetTimestamp();
        run();
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }
}
