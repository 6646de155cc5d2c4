using System.Globalization;
using System.Runtime;

namespace Orleans.Optim.Cli.Bench;

/// <summary>
/// This process's resident memory as Linux reports it in <c>/proc/self/status</c>: <c>VmRSS</c> now and
/// <c>VmHWM</c>, the peak since the process started or since the peak was last reset.
/// </summary>
public static class ProcessMemory
{
    /// <summary>Whether <c>/proc/self/status</c> exists, so that the figures below are available.</summary>
    public static bool IsAvailable => File.Exists("/proc/self/status");

    /// <summary>Current resident set size in bytes (<c>VmRSS</c>).</summary>
    public static long ResidentBytes() => ReadStatusBytes("VmRSS:");

    /// <summary>Peak resident set size in bytes (<c>VmHWM</c>).</summary>
    public static long PeakResidentBytes() => ReadStatusBytes("VmHWM:");

    /// <summary>
    /// Resets <c>VmHWM</c> to the current resident set size by writing <c>5</c> to <c>/proc/self/clear_refs</c>
    /// (Linux 4.0 and later).
    /// </summary>
    /// <returns>Whether the reset worked; without it, the peak may be one from before.</returns>
    public static bool TryResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Runs a blocking, compacting full collection that returns as much free memory to the OS as it can.</summary>
    public static void Settle()
    {
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    private static long ReadStatusBytes(string field)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                // The line reads like "VmHWM:	  123456 kB".
                string number = line[field.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
                return long.Parse(number, CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidDataException($"/proc/self/status has no {field} line.");
    }
}
