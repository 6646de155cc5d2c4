using Orleans.Optim.Wire;

namespace Orleans.Optim.Client;

/// <summary>One range of one shard's state tensor bytes.</summary>
/// <param name="ShardIndex">The shard.</param>
/// <param name="Offset">First byte in the shard's tensor bytes.</param>
/// <param name="Count">Number of bytes, at most <see cref="ShardStateChunk.MaxBytes"/>.</param>
internal readonly record struct ChunkRequest(int ShardIndex, long Offset, long Count);

/// <summary>
/// The bytes of a list of shard state ranges as one sequential source, fetched ahead in a bounded window so that a
/// synchronous writer can copy them out while the next ranges travel.
/// </summary>
/// <remarks>
/// The ranges are fetched in segments of consecutive ranges of at most <see cref="SegmentBytes"/> bytes or
/// <see cref="MaxSegmentRequests"/> ranges, and at most <see cref="SegmentsInFlight"/> segments are on their way
/// at once, so memory stays bounded by the window (about 16 MiB), not by the state's size. Not thread-safe.
/// </remarks>
internal sealed class ShardChunkStream : IDisposable
{
    /// <summary>Largest range of one request when a state dict is gathered, and the default of <see cref="Plan"/>: 4 MiB.</summary>
    public const int ChunkBytes = 4 << 20;

    /// <summary>
    /// Largest range of one request of a streamed export: 64 KiB, below .NET's 85,000-byte threshold of the large
    /// object heap. Each range arrives as its own array, and arrays this small die young in gen 0. Larger ones would
    /// wait in the large object heap for a full collection, and a first export after a large heap (such as right
    /// after training) grew this process by most of the state's size before one came.
    /// </summary>
    public const int StreamedChunkBytes = 64 << 10;

    /// <summary>Most bytes of one segment (one segment may hold one larger range).</summary>
    public const long SegmentBytes = 8 << 20;

    /// <summary>Most ranges of one segment, which matters for many small shards.</summary>
    public const int MaxSegmentRequests = 1024;

    /// <summary>Segments fetched ahead of the reader at once.</summary>
    public const int SegmentsInFlight = 2;

    private readonly IReadOnlyList<ChunkRequest> _requests;
    private readonly Func<IReadOnlyList<ChunkRequest>, Task<ShardStateChunk[]>> _fetch;
    private readonly Queue<(List<ChunkRequest> Requests, Task<ShardStateChunk[]> Replies)> _inFlight = new();
    private readonly Queue<byte[]> _ready = new();
    private int _nextRequest;
    private byte[] _current = [];
    private int _currentPosition;

    /// <summary>Creates the source; nothing is fetched before the first read.</summary>
    /// <param name="requests">The ranges in the order they are read.</param>
    /// <param name="fetch">Fetches a segment of ranges and returns one reply per range, in order, each with exactly the range's bytes.</param>
    public ShardChunkStream(IReadOnlyList<ChunkRequest> requests, Func<IReadOnlyList<ChunkRequest>, Task<ShardStateChunk[]>> fetch)
    {
        _requests = requests;
        _fetch = fetch;
    }

    /// <summary>Splits consecutive ranges into requests of at most <see cref="ChunkBytes"/>, first joining those that continue each other on one shard.</summary>
    public static List<ChunkRequest> Plan(IEnumerable<ChunkRequest> ranges, int chunkBytes = ChunkBytes)
    {
        var joined = new List<ChunkRequest>();
        foreach (var range in ranges.Where(r => r.Count > 0))
        {
            if (joined.Count > 0 && joined[^1] is var last && last.ShardIndex == range.ShardIndex && last.Offset + last.Count == range.Offset
                && last.Count + range.Count <= chunkBytes)
            {
                joined[^1] = last with { Count = last.Count + range.Count };
            }
            else
            {
                joined.Add(range);
            }
        }

        var requests = new List<ChunkRequest>();
        foreach (var range in joined)
        {
            for (long done = 0; done < range.Count; done += chunkBytes)
            {
                requests.Add(new ChunkRequest(range.ShardIndex, range.Offset + done, Math.Min(chunkBytes, range.Count - done)));
            }
        }

        return requests;
    }

    /// <summary>Copies the next <paramref name="byteCount"/> bytes to <paramref name="output"/>, waiting for their replies.</summary>
    /// <exception cref="OptimizerFaultException">A shard failed the read, for example because it took a step meanwhile.</exception>
    /// <exception cref="InvalidOperationException">The requests hold fewer bytes than the reads take.</exception>
    public void CopyTo(Stream output, long byteCount)
    {
        while (byteCount > 0)
        {
            if (_currentPosition == _current.Length)
            {
                _current = TakeNext();
                _currentPosition = 0;
            }

            int length = (int)Math.Min(byteCount, _current.Length - _currentPosition);
            output.Write(_current, _currentPosition, length);
            _currentPosition += length;
            byteCount -= length;
        }
    }

    /// <summary>Stops fetching ahead; replies still on their way are observed and dropped.</summary>
    public void Dispose()
    {
        while (_inFlight.TryDequeue(out var pending))
        {
            _ = pending.Replies.ContinueWith(t => t.Exception, TaskContinuationOptions.OnlyOnFaulted);
        }

        _ready.Clear();
        _nextRequest = _requests.Count;
    }

    private byte[] TakeNext()
    {
        if (_ready.Count == 0)
        {
            FillWindow();
            if (!_inFlight.TryDequeue(out var segment))
            {
                throw new InvalidOperationException("The exported tensors need more bytes than the planned shard reads hold; the export plan is wrong.");
            }

            FillWindow();
            var replies = segment.Replies.GetAwaiter().GetResult();
            for (int i = 0; i < segment.Requests.Count; i++)
            {
                var request = segment.Requests[i];
                if (replies[i].Data.Length != request.Count)
                {
                    throw new OptimizerFaultException(
                        OptimizerFault.Inconsistent,
                        $"Shard {request.ShardIndex} returned {replies[i].Data.Length} bytes of its state at offset {request.Offset}, not {request.Count}; its state changed during the read.");
                }

                _ready.Enqueue(replies[i].Data);
            }
        }

        return _ready.Dequeue();
    }

    private void FillWindow()
    {
        while (_nextRequest < _requests.Count && _inFlight.Count < SegmentsInFlight)
        {
            var segment = new List<ChunkRequest>();
            long bytes = 0;
            while (_nextRequest < _requests.Count && segment.Count < MaxSegmentRequests
                && (segment.Count == 0 || bytes + _requests[_nextRequest].Count <= SegmentBytes))
            {
                bytes += _requests[_nextRequest].Count;
                segment.Add(_requests[_nextRequest++]);
            }

            _inFlight.Enqueue((segment, _fetch(segment)));
        }
    }
}
