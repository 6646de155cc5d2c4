using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Orleans.Optim.Cli.Bench;

/// <summary>
/// A STREAM-style triad <c>a[i] = b[i] + s * c[i]</c>: the memory bandwidth baseline of the kernel benchmark.
/// </summary>
/// <remarks>
/// The loop uses ordinary stores, so each store first reads its cache line (write-allocate). A run therefore moves
/// 16 bytes per element: it reads b, c and a's line, and writes a. The original STREAM counts 12 bytes, without the
/// write-allocate read.
/// </remarks>
public sealed class StreamTriad
{
    /// <summary>Bytes moved per element: b, c, a's write-allocate read and a's write, 4 bytes each.</summary>
    public const int BytesPerElement = 16;

    private const float Scalar = 3f;

    private readonly float[] _a;
    private readonly float[] _b;
    private readonly float[] _c;

    /// <summary>Creates the three arrays of <paramref name="elements"/> floats and writes every page of them.</summary>
    public StreamTriad(int elements)
    {
        _a = new float[elements];
        _b = new float[elements];
        _c = new float[elements];
        Array.Fill(_a, 0f);
        Array.Fill(_b, 1f);
        Array.Fill(_c, 2f);
    }

    /// <summary>Runs the triad over all elements, split into <paramref name="threads"/> contiguous chunks.</summary>
    /// <param name="threads">Number of chunks, each on its own thread; 1 runs on the calling thread.</param>
    /// <param name="wide">Whether to use 512-bit vectors instead of 256-bit ones.</param>
    public void Run(int threads, bool wide)
    {
        if (threads == 1)
        {
            RunRange(0, _a.Length, wide);
            return;
        }

        // Chunks of whole 64-element blocks (256 bytes), so no two threads write the same cache line.
        int chunk = (_a.Length + threads - 1) / threads;
        chunk = (chunk + 63) / 64 * 64;
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, index =>
        {
            int start = index * chunk;
            int end = Math.Min(_a.Length, start + chunk);
            if (start < end)
            {
                RunRange(start, end, wide);
            }
        });
    }

    private void RunRange(int start, int end, bool wide)
    {
        ref float a = ref MemoryMarshal.GetArrayDataReference(_a);
        ref float b = ref MemoryMarshal.GetArrayDataReference(_b);
        ref float c = ref MemoryMarshal.GetArrayDataReference(_c);
        int i = start;
        if (wide)
        {
            var s = Vector512.Create(Scalar);
            for (; i <= end - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                (Vector512.LoadUnsafe(ref b, (nuint)i) + s * Vector512.LoadUnsafe(ref c, (nuint)i)).StoreUnsafe(ref a, (nuint)i);
            }
        }
        else
        {
            var s = Vector256.Create(Scalar);
            for (; i <= end - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                (Vector256.LoadUnsafe(ref b, (nuint)i) + s * Vector256.LoadUnsafe(ref c, (nuint)i)).StoreUnsafe(ref a, (nuint)i);
            }
        }

        for (; i < end; i++)
        {
            _a[i] = _b[i] + Scalar * _c[i];
        }
    }
}
