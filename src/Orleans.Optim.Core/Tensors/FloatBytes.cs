using System.Runtime.InteropServices;

namespace Orleans.Optim.Tensors;

/// <summary>Converts float32 arrays to and from their raw little-endian bytes, the form tensors take on the wire.</summary>
public static class FloatBytes
{
    /// <summary>Returns the bytes of <paramref name="values"/>, copied.</summary>
    public static byte[] ToBytes(ReadOnlySpan<float> values) => MemoryMarshal.AsBytes(values).ToArray();

    /// <summary>Returns the floats that <paramref name="bytes"/> hold, copied.</summary>
    /// <exception cref="ArgumentException">The length is not a multiple of 4.</exception>
    public static float[] ToFloats(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length % sizeof(float) != 0)
        {
            throw new ArgumentException($"Expected float32 data, a multiple of 4 bytes, found {bytes.Length} bytes.", nameof(bytes));
        }

        return MemoryMarshal.Cast<byte, float>(bytes).ToArray();
    }
}
