using Orleans.Optim.Tensors;

namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Tensor placeholder for <see cref="PtWriter"/> whose element bytes a callback writes at the moment the writer
/// reaches its storage entry, so that a large state never has to be in memory at once.
/// </summary>
/// <remarks>
/// Put an instance in the value tree wherever a <see cref="Tensor"/> may go. torch loads it as a contiguous CPU
/// tensor. The callback runs once per instance, even when the instance occurs several times in the tree.
/// Writing a tree that contains one requires a seekable output stream, because the CRC-32 of the entry is
/// known only after the callback returns.
/// </remarks>
public sealed class StreamedTensor
{
    private readonly Action<Stream> _writeData;

    /// <summary>Creates a placeholder for a contiguous row-major tensor.</summary>
    /// <param name="dtype">Element type.</param>
    /// <param name="shape">Sizes of each dimension, empty for a 0-d tensor. The array is copied.</param>
    /// <param name="writeData">
    /// Callback that writes exactly <see cref="ByteCount"/> little-endian element bytes in row-major order to the
    /// stream it receives. It may write in any number of calls and must not keep the stream.
    /// </param>
    /// <exception cref="ArgumentException">A size is negative or the byte count overflows.</exception>
    public StreamedTensor(DType dtype, long[] shape, Action<Stream> writeData)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(writeData);

        DType = dtype;
        Shape = (long[])shape.Clone();
        try
        {
            ByteCount = checked(Tensor.CountElements(Shape) * dtype.ElementSize());
        }
        catch (OverflowException ex)
        {
            throw new ArgumentException($"Invalid shape {Tensor.FormatShape(Shape)}: its byte count overflows a 64-bit integer.", nameof(shape), ex);
        }

        _writeData = writeData;
    }

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>Sizes of each dimension, empty for a 0-d tensor.</summary>
    public long[] Shape { get; }

    /// <summary>Number of bytes that the callback must write: the element count times the element size.</summary>
    public long ByteCount { get; }

    /// <summary>Runs the callback on <paramref name="destination"/>.</summary>
    internal void WriteData(Stream destination) => _writeData(destination);

    /// <inheritdoc/>
    public override string ToString() => $"StreamedTensor[{DType.TorchName()}, {Tensor.FormatShape(Shape)}]";
}
