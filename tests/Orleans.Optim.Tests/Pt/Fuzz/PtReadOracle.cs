using System.Diagnostics;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.StateDicts;

namespace Orleans.Optim.Tests.Pt.Fuzz;

/// <summary>How a read of a possibly hostile file ended.</summary>
internal enum PtReadOutcome
{
    /// <summary>The reader returned a value and <see cref="OptimizerStateDict.FromPython"/> accepted it.</summary>
    Accepted,

    /// <summary>The reader returned a value that <see cref="OptimizerStateDict.FromPython"/> rejected with <see cref="StateDictException"/>.</summary>
    NotOptimizerState,

    /// <summary>The reader rejected the file with <see cref="PtFormatException"/>.</summary>
    Rejected,

    /// <summary>Anything else: another exception type, a time-out, too much memory, or an unusable message.</summary>
    Failed,
}

/// <summary>The result of one <see cref="PtReadOracle.Read"/>.</summary>
/// <param name="Outcome">How the read ended.</param>
/// <param name="AllocatedBytes">Bytes that the reading thread allocated, or -1 after a time-out.</param>
/// <param name="Elapsed">Wall-clock time of the read.</param>
/// <param name="Message">The message of the exception that ended the read, if any.</param>
/// <param name="Problem">Why the outcome is <see cref="PtReadOutcome.Failed"/>, or null.</param>
internal sealed record PtReadResult(PtReadOutcome Outcome, long AllocatedBytes, TimeSpan Elapsed, string? Message, string? Problem);

/// <summary>
/// Reads a possibly hostile file the way a caller would, and checks the contract of <see cref="PtReader"/>:
/// a value (which <see cref="OptimizerStateDict.FromPython"/> accepts or rejects with <see cref="StateDictException"/>)
/// or <see cref="PtFormatException"/>, within a time limit and an allocation bound derived from the file size.
/// </summary>
internal static class PtReadOracle
{
    /// <summary>Longest accepted exception message. Messages quote at most 100 characters of any value from the file.</summary>
    public const int MaxMessageLength = 4000;

    /// <summary>Time limit of one read, far above the milliseconds that a read of a small file takes.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private static readonly Lock WorkerLock = new();
    private static ReadWorker? _worker;

    /// <summary>
    /// Returns the most bytes that one read of a file of <paramref name="fileLength"/> bytes may allocate: 256 bytes
    /// per file byte for the zip directory, the pickle and the values it builds (about 105 bytes per pickle byte at
    /// most, see <see cref="PtReaderOptions"/>), <see cref="PtReaderOptions.MaxStorageCopies"/> bytes per file byte
    /// for tensors, which copy views of storages that lie in the file, and 1 MiB for buffers of fixed size.
    /// </summary>
    public static long AllocationBound(long fileLength, PtReaderOptions options) =>
        ((256 + options.MaxStorageCopies) * fileLength) + (1 << 20);

    /// <summary>Reads <paramref name="file"/> on a worker thread, waits at most <see cref="Timeout"/>, and classifies the result.</summary>
    public static PtReadResult Read(byte[] file, PtReaderOptions options)
    {
        lock (WorkerLock)
        {
            _worker ??= new ReadWorker();
            var clock = Stopwatch.StartNew();
            if (_worker.TryRead(file, options, Timeout, out var result))
            {
                return result;
            }

            // The read keeps running on the abandoned worker thread, which the test cannot stop, so later reads get a new one.
            _worker = null;
            return new PtReadResult(PtReadOutcome.Failed, -1, clock.Elapsed, null, $"The read did not finish within {Timeout.TotalSeconds} s.");
        }
    }

    private static PtReadResult ReadOnThisThread(byte[] file, PtReaderOptions options)
    {
        var stream = new MemoryStream(file, writable: false);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        PtReadOutcome outcome;
        string? message = null;
        string? problem = null;
        try
        {
            var root = PtReader.Read(stream, options);
            try
            {
                OptimizerStateDict.FromPython(root);
                outcome = PtReadOutcome.Accepted;
            }
            catch (StateDictException ex)
            {
                outcome = PtReadOutcome.NotOptimizerState;
                message = ex.Message;
            }
        }
        catch (PtFormatException ex)
        {
            outcome = PtReadOutcome.Rejected;
            message = ex.Message;
        }
        catch (Exception ex)
        {
            outcome = PtReadOutcome.Failed;
            message = ex.Message;
            problem = $"The read raised {ex.GetType().FullName} instead of PtFormatException: {ex}";
        }

        var elapsed = clock.Elapsed;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        long bound = AllocationBound(file.Length, options);
        if (problem is null && allocated > bound)
        {
            problem = $"The read of {file.Length} bytes allocated {allocated} bytes, more than the bound of {bound}.";
        }
        else if (problem is null && message is not null && (message.Length == 0 || message.Length > MaxMessageLength))
        {
            problem = $"The exception message has {message.Length} characters, but it must have 1 to {MaxMessageLength}.";
        }

        return new PtReadResult(problem is null ? outcome : PtReadOutcome.Failed, allocated, elapsed, message, problem);
    }

    /// <summary>
    /// A background thread that runs one read at a time. A dedicated thread starts each read at once, where the thread
    /// pool can delay a work item by hundreds of milliseconds while it adds threads, and it survives a read that hangs.
    /// </summary>
    private sealed class ReadWorker
    {
        private readonly SemaphoreSlim _requested = new(0);
        private readonly SemaphoreSlim _finished = new(0);
        private byte[] _file = [];
        private PtReaderOptions _options = PtReaderOptions.Default;
        private PtReadResult? _result;

        public ReadWorker()
        {
            new Thread(Run) { IsBackground = true, Name = "pt-read-oracle" }.Start();
        }

        public bool TryRead(byte[] file, PtReaderOptions options, TimeSpan timeout, out PtReadResult result)
        {
            (_file, _options) = (file, options);
            _requested.Release();
            bool finished = _finished.Wait(timeout);
            result = finished ? _result! : null!;
            return finished;
        }

        private void Run()
        {
            while (true)
            {
                _requested.Wait();
                _result = ReadOnThisThread(_file, _options);
                _finished.Release();
            }
        }
    }
}
