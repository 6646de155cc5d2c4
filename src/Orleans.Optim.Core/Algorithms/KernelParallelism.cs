namespace Orleans.Optim.Algorithms;

/// <summary>
/// Setting for splitting one update of a slice over several threads. Every update is elementwise, so contiguous
/// chunks give the same bits as one pass over the slice.
/// </summary>
/// <remarks>
/// Only Adam, AdamW and SGD have chunked kernels. The other algorithms ignore this setting and run on the calling
/// thread. A chunked step blocks the calling thread until every chunk is done, and runs the other chunks on thread pool
/// threads.
/// </remarks>
public sealed class KernelParallelism
{
    /// <summary>
    /// Default minimum number of elements per chunk: 256Ki elements take about 0.1 ms in the Adam kernel, far
    /// longer than handing a chunk to a thread pool thread.
    /// </summary>
    public const int DefaultMinChunkElements = 1 << 18;

    // Chunk starts are multiples of 64 elements (256 bytes), so two chunks never share a cache line when the slice
    // starts on one, and every chunk but the last has no scalar tail.
    private const int ChunkGranularity = 64;

    /// <summary>Creates the setting.</summary>
    /// <param name="maxThreads">Maximum number of threads for one update, counting the calling thread.</param>
    /// <param name="minChunkElements">Minimum number of elements per chunk; a smaller slice runs on the calling thread.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is less than 1.</exception>
    public KernelParallelism(int maxThreads, int minChunkElements = DefaultMinChunkElements)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxThreads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(minChunkElements, 1);
        MaxThreads = maxThreads;
        MinChunkElements = minChunkElements;
    }

    /// <summary>One thread: the whole slice is updated on the calling thread.</summary>
    public static KernelParallelism None { get; } = new(1);

    /// <summary>Maximum number of threads for one update, counting the calling thread.</summary>
    public int MaxThreads { get; }

    /// <summary>Minimum number of elements per chunk.</summary>
    public int MinChunkElements { get; }

    /// <summary>Returns the number of chunks for a slice of <paramref name="length"/> elements, at least 1.</summary>
    public int ChunkCount(int length) => Math.Clamp(length / MinChunkElements, 1, MaxThreads);

    /// <summary>
    /// Runs <paramref name="kernel"/> on <paramref name="chunkCount"/> contiguous chunks of the slice in parallel. The
    /// kernel gets each chunk's start index and the chunk of <paramref name="param"/> and <paramref name="grad"/>.
    /// </summary>
    internal static unsafe void RunChunks(Span<float> param, ReadOnlySpan<float> grad, int chunkCount, ChunkKernel kernel)
    {
        int length = param.Length;
        int chunkLength = (length + chunkCount - 1) / chunkCount;
        chunkLength = (chunkLength + ChunkGranularity - 1) / ChunkGranularity * ChunkGranularity;

        // The spans may point into arrays, so they are pinned for the threads that receive raw addresses.
        fixed (float* paramPointer = param)
        fixed (float* gradPointer = grad)
        {
            nint paramAddress = (nint)paramPointer;
            nint gradAddress = (nint)gradPointer;
            Parallel.For(0, chunkCount, new ParallelOptions { MaxDegreeOfParallelism = chunkCount }, chunk =>
            {
                int start = chunk * chunkLength;
                int count = Math.Min(chunkLength, length - start);
                if (count > 0)
                {
                    kernel(start, new Span<float>((float*)paramAddress + start, count), new ReadOnlySpan<float>((float*)gradAddress + start, count));
                }
            });
        }
    }

    /// <summary>Updates one chunk that starts at element <paramref name="start"/> of the slice.</summary>
    internal delegate void ChunkKernel(int start, Span<float> param, ReadOnlySpan<float> grad);
}
