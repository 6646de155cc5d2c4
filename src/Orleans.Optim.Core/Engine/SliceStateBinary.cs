using System.Runtime.InteropServices;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Engine;

/// <summary>
/// A binary encoding of a <see cref="SliceState"/> that block-copies its float buffers, for Orleans messages and grain storage.
/// </summary>
public static class SliceStateBinary
{
    /// <summary>Encodes a state; <see langword="null"/> encodes as an empty array.</summary>
    public static byte[] Encode(SliceState? state) => EncodeEntries(state, withTensors: true);

    /// <summary>
    /// Encodes a state with every tensor entry as an empty slice, for a reader that fetches the tensor bytes apart;
    /// <see cref="Decode"/> reads it back with zero-length tensors.
    /// </summary>
    public static byte[] EncodeHeader(SliceState? state) => EncodeEntries(state, withTensors: false);

    private static byte[] EncodeEntries(SliceState? state, bool withTensors)
    {
        if (state is null)
        {
            return [];
        }

        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream))
        {
            writer.Write((byte)1);
            writer.Write7BitEncodedInt(state.Entries.Count);
            foreach (var entry in state.Entries)
            {
                writer.Write(entry.Name);
                writer.Write((byte)entry.Kind);
                writer.Write((byte)entry.ScalarDType);
                writer.Write(entry.Number);
                if (entry.Kind == StateValueKind.ParamTensor)
                {
                    var values = withTensors ? entry.Values.AsSpan() : [];
                    writer.Write7BitEncodedInt(values.Length);
                    writer.Write(MemoryMarshal.AsBytes(values));
                }
            }
        }

        return stream.ToArray();
    }

    /// <summary>Decodes what <see cref="Encode"/> wrote.</summary>
    /// <exception cref="FormatException">The bytes are not a valid encoding.</exception>
    public static SliceState? Decode(byte[] data)
    {
        if (data.Length == 0)
        {
            return null;
        }

        using var reader = new BinaryReader(new MemoryStream(data, writable: false));
        try
        {
            if (reader.ReadByte() != 1)
            {
                throw new FormatException("Unknown version of an encoded slice state.");
            }

            int count = reader.Read7BitEncodedInt();
            var entries = new List<StateEntry>();
            for (int i = 0; i < count; i++)
            {
                string name = reader.ReadString();
                var kind = (StateValueKind)reader.ReadByte();
                var dtype = (DType)reader.ReadByte();
                double number = reader.ReadDouble();
                entries.Add(kind switch
                {
                    StateValueKind.None => StateEntry.None(name),
                    StateValueKind.ParamTensor => StateEntry.Slice(name, ReadFloats(reader)),
                    StateValueKind.ScalarTensor => StateEntry.ScalarTensor(name, number, dtype),
                    StateValueKind.Int => StateEntry.Int(name, (long)number),
                    StateValueKind.Float => StateEntry.Float(name, number),
                    _ => throw new FormatException($"Unknown state value kind {(byte)kind}."),
                });
            }

            return new SliceState(entries);
        }
        catch (EndOfStreamException e)
        {
            throw new FormatException("Encoded slice state is truncated.", e);
        }
    }

    private static float[] ReadFloats(BinaryReader reader)
    {
        int length = reader.Read7BitEncodedInt();
        if (length < 0 || (long)length * sizeof(float) > reader.BaseStream.Length - reader.BaseStream.Position)
        {
            throw new FormatException($"Invalid tensor length {length} in an encoded slice state.");
        }

        var values = new float[length];
        reader.BaseStream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }
}
