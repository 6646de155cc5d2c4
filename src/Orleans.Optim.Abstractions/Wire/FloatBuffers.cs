using System.Runtime.InteropServices;
using Orleans.Serialization.Buffers;

namespace Orleans.Optim.Wire;

/// <summary>
/// Moves float32 values into and out of <see cref="PooledBuffer"/>, the pooled form tensors take in step messages,
/// as raw little-endian bytes in block copies.
/// </summary>
public static class FloatBuffers
{
    /// <summary>Returns a new pooled buffer that holds the bytes of <paramref name="values"/>.</summary>
    public static PooledBuffer FromFloats(ReadOnlySpan<float> values)
    {
        var buffer = new PooledBuffer();
        buffer.Write(MemoryMarshal.AsBytes(values));
        return buffer;
    }

    /// <summary>Copies the floats that <paramref name="buffer"/> holds into <paramref name="destination"/>, which must have room for exactly that many.</summary>
    /// <exception cref="ArgumentException">The buffer does not hold <c>destination.Length</c> floats.</exception>
    public static void CopyTo(in PooledBuffer buffer, Span<float> destination)
    {
        if (buffer.Length != (long)destination.Length * sizeof(float))
        {
            throw new ArgumentException(
                $"Expected {destination.Length} float32 values ({(long)destination.Length * sizeof(float)} bytes), found {buffer.Length} bytes.",
                nameof(buffer));
        }

        buffer.CopyTo(MemoryMarshal.AsBytes(destination));
    }
}
