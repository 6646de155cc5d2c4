using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Orleans.Optim.Tensors;

/// <summary>
/// A dense, contiguous, row-major CPU tensor: a dtype, a shape and the raw little-endian bytes of its elements.
/// </summary>
/// <remarks>
/// This is the value type of state dicts, <c>.pt</c> files and the wire. It does no math: the optimizer
/// kernels work on <see cref="Span{T}"/> views of <see cref="Data"/>. The class has reference equality on
/// purpose, because the pickler memoizes objects by equality and two equal tensors must still be two tensors.
/// </remarks>
public sealed class Tensor
{
    /// <summary>Creates a tensor over the given bytes without copying them.</summary>
    /// <param name="dtype">Element type.</param>
    /// <param name="shape">Sizes of each dimension; empty for a 0-d tensor.</param>
    /// <param name="data">Little-endian element bytes, exactly <c>numel * element size</c> long.</param>
    /// <exception cref="ArgumentException">A size is negative, or <paramref name="data"/> has the wrong length.</exception>
    public Tensor(DType dtype, long[] shape, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);

        long numel = CountElements(shape);
        long expectedBytes = numel * dtype.ElementSize();
        if (data.LongLength != expectedBytes)
        {
            throw new ArgumentException(
                $"Tensor data has {data.LongLength} bytes, but dtype {dtype.TorchName()} with shape {FormatShape(shape)} needs {expectedBytes}.",
                nameof(data));
        }

        DType = dtype;
        Shape = shape;
        Data = data;
    }

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>Sizes of each dimension; empty for a 0-d tensor.</summary>
    public long[] Shape { get; }

    /// <summary>Raw little-endian element bytes in row-major order.</summary>
    public byte[] Data { get; }

    /// <summary>Number of elements, the product of <see cref="Shape"/> (1 for a 0-d tensor).</summary>
    public long NumElements => Data.LongLength / DType.ElementSize();

    /// <summary>Creates a float32 tensor that copies <paramref name="values"/>.</summary>
    public static Tensor FromFloats(ReadOnlySpan<float> values, params long[] shape)
    {
        var data = new byte[checked(values.Length * sizeof(float))];
        MemoryMarshal.AsBytes(values).CopyTo(data);
        return new Tensor(DType.Float32, shape, data);
    }

    /// <summary>Creates a 0-d float32 tensor, such as torch's <c>tensor(3.)</c> for an Adam <c>step</c>.</summary>
    public static Tensor Scalar(float value) => FromFloats([value]);

    /// <summary>Creates a float32 tensor of zeros.</summary>
    public static Tensor Zeros(params long[] shape) =>
        new(DType.Float32, shape, new byte[checked(CountElements(shape) * sizeof(float))]);

    /// <summary>Returns a view of a float32 tensor's elements.</summary>
    /// <exception cref="InvalidOperationException">The tensor is not float32.</exception>
    public Span<float> AsFloats()
    {
        if (DType != DType.Float32)
        {
            throw new InvalidOperationException($"Expected a float32 tensor, found {DType.TorchName()}. Convert it with ToFloat32() first.");
        }

        return MemoryMarshal.Cast<byte, float>(Data.AsSpan());
    }

    /// <summary>
    /// Returns this tensor converted to float32, as torch's <c>tensor.to(torch.float32)</c>; returns this instance when it already is.
    /// </summary>
    public Tensor ToFloat32()
    {
        if (DType == DType.Float32)
        {
            return this;
        }

        var result = new float[checked((int)NumElements)];
        var source = Data.AsSpan();
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = DType switch
            {
                DType.Float64 => (float)BinaryPrimitives.ReadDoubleLittleEndian(source[(i * 8)..]),
                DType.Float16 => (float)BinaryPrimitives.ReadHalfLittleEndian(source[(i * 2)..]),
                DType.BFloat16 => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source[(i * 2)..]) << 16),
                DType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(source[(i * 8)..]),
                DType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(source[(i * 4)..]),
                DType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(source[(i * 2)..]),
                DType.Int8 => (sbyte)source[i],
                DType.UInt8 => source[i],
                DType.Bool => source[i] != 0 ? 1f : 0f,
                _ => throw new InvalidOperationException($"Unknown dtype {DType}."),
            };
        }

        return FromFloats(result, Shape);
    }

    /// <summary>Returns whether the shapes are equal dimension by dimension.</summary>
    public bool HasShape(ReadOnlySpan<long> shape) => Shape.AsSpan().SequenceEqual(shape);

    /// <summary>Returns whether dtype, shape and every byte are equal.</summary>
    public bool BitwiseEquals(Tensor other) =>
        DType == other.DType && HasShape(other.Shape) && Data.AsSpan().SequenceEqual(other.Data);

    /// <summary>Returns the product of the sizes, checking that none is negative.</summary>
    /// <exception cref="ArgumentException">A size is negative or the product overflows.</exception>
    public static long CountElements(ReadOnlySpan<long> shape)
    {
        long count = 1;
        foreach (long size in shape)
        {
            if (size < 0)
            {
                throw new ArgumentException($"Invalid shape {FormatShape(shape)}: sizes must not be negative.", nameof(shape));
            }

            count = checked(count * size);
        }

        return count;
    }

    /// <summary>Formats a shape as torch prints it in lists, such as <c>[3, 5]</c>.</summary>
    public static string FormatShape(ReadOnlySpan<long> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    /// <inheritdoc/>
    public override string ToString() => $"Tensor[{DType.TorchName()}, {FormatShape(Shape)}]";
}
