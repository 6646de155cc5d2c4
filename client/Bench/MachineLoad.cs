using System.Globalization;

namespace Orleans.Optim.Cli.Bench;

/// <summary>
/// How busy the machine was during a benchmark run: the 1-minute load average at the start, and the share of all
/// CPU time that other processes used while it ran, from <c>/proc/stat</c> (Linux only).
/// </summary>
/// <remarks>
/// The run's own CPU time counts this process and every child it waited for (silo processes, the PyTorch script),
/// from the <c>utime</c>, <c>stime</c>, <c>cutime</c> and <c>cstime</c> fields of <c>/proc/self/stat</c>. Call
/// <see cref="End"/> after every child has exited and been waited for, or their time counts as other processes'.
/// </remarks>
public sealed class MachineLoad
{
    private readonly long[]? _startTotals;
    private readonly long? _startOwnTicks;

    private MachineLoad(double? loadAverage, long[]? startTotals, long? startOwnTicks)
    {
        LoadAverage = loadAverage;
        _startTotals = startTotals;
        _startOwnTicks = startOwnTicks;
    }

    /// <summary>The 1-minute load average when the run started, where the OS reports one.</summary>
    public double? LoadAverage { get; }

    /// <summary>Records the load average and the CPU counters at the start of a run.</summary>
    public static MachineLoad Begin() => new(ReadLoadAverage(), ReadCpuTotals(), ReadOwnTicks());

    /// <summary>
    /// Returns the share of the machine's CPU time since <see cref="Begin"/> that other processes used, from 0 to 1,
    /// or <see langword="null"/> where <c>/proc</c> cannot be read.
    /// </summary>
    public double? End()
    {
        var totals = ReadCpuTotals();
        long? ownTicks = ReadOwnTicks();
        if (_startTotals is null || totals is null || _startOwnTicks is null || ownTicks is null)
        {
            return null;
        }

        long busy = totals[0] - _startTotals[0];
        long all = totals[1] - _startTotals[1];
        long own = ownTicks.Value - _startOwnTicks.Value;
        return all <= 0 ? null : Math.Clamp((double)(busy - own) / all, 0, 1);
    }

    /// <summary>Returns the first field of <c>/proc/loadavg</c>, or <see langword="null"/> where it cannot be read.</summary>
    public static double? ReadLoadAverage()
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

    // Busy and total clock ticks of all CPUs, from the "cpu" line of /proc/stat: user nice system idle iowait irq
    // softirq steal. Idle and iowait are the idle ticks.
    private static long[]? ReadCpuTotals()
    {
        try
        {
            string line = File.ReadLines("/proc/stat").First();
            long[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8)
                .Select(f => long.Parse(f, CultureInfo.InvariantCulture)).ToArray();
            long total = fields.Sum();
            long idle = fields[3] + fields[4];
            return [total - idle, total];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or InvalidOperationException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    // utime + stime + cutime + cstime of this process, in clock ticks (fields 14 to 17 of /proc/self/stat).
    private static long? ReadOwnTicks()
    {
        try
        {
            string text = File.ReadAllText("/proc/self/stat");

            // The command name in brackets may contain spaces, so the fields are counted after its closing bracket.
            string[] fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
            return Enumerable.Range(11, 4).Sum(i => long.Parse(fields[i], CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }
}
