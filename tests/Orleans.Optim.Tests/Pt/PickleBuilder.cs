using System.Buffers.Binary;
using System.Text;
using Orleans.Optim.Formats.Pt;

namespace Orleans.Optim.Tests.Pt;

/// <summary>
/// Assembles pickle programs opcode by opcode, so that tests can build malicious or malformed <c>data.pkl</c>
/// bytes without any pickler running them.
/// </summary>
internal sealed class PickleBuilder
{
    private readonly List<byte> _bytes = [];

    /// <summary>Current length, which is the offset of the next opcode.</summary>
    public int Position => _bytes.Count;

    /// <summary>Starts a pickle with PROTO.</summary>
    public static PickleBuilder Start(byte protocol = 2) => new PickleBuilder().Op(PickleOpcodes.Proto, protocol);

    /// <summary>Appends an opcode and its raw argument bytes.</summary>
    public PickleBuilder Op(byte opcode, params byte[] argument)
    {
        _bytes.Add(opcode);
        _bytes.AddRange(argument);
        return this;
    }

    /// <summary>Appends GLOBAL with a module and a name.</summary>
    public PickleBuilder Global(string module, string name) =>
        Op(PickleOpcodes.Global, Encoding.UTF8.GetBytes(module + "\n" + name + "\n"));

    /// <summary>Appends BINUNICODE.</summary>
    public PickleBuilder Str(string text)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        var length = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, utf8.Length);
        return Op(PickleOpcodes.BinUnicode, [.. length, .. utf8]);
    }

    /// <summary>Appends an int as BININT when it fits in 32 bits, else as LONG1.</summary>
    public PickleBuilder Int(long value)
    {
        if (value is >= int.MinValue and <= int.MaxValue)
        {
            var bytes = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(bytes, (int)value);
            return Op(PickleOpcodes.BinInt, bytes);
        }

        var wide = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(wide, value);
        return Op(PickleOpcodes.Long1, [8, .. wide]);
    }

    /// <summary>Appends a tuple of ints with MARK and TUPLE.</summary>
    public PickleBuilder IntTuple(params long[] values)
    {
        Op(PickleOpcodes.Mark);
        foreach (long value in values)
        {
            Int(value);
        }

        return Op(PickleOpcodes.Tuple);
    }

    /// <summary>
    /// Appends a tensor as torch 1.13 pickles it: <c>_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())</c>
    /// with the persistent id <c>('storage', torch.&lt;storageClass&gt;, key, 'cpu', numel)</c>.
    /// </summary>
    public PickleBuilder Tensor(string key, long numElements, long[] shape, long[]? stride = null, long offset = 0, string storageClass = "FloatStorage")
    {
        stride ??= ContiguousStride(shape);
        Global("torch._utils", "_rebuild_tensor_v2");
        Op(PickleOpcodes.Mark);
        Op(PickleOpcodes.Mark).Str("storage").Global("torch", storageClass).Str(key).Str("cpu").Int(numElements).Op(PickleOpcodes.Tuple);
        Op(PickleOpcodes.BinPersId);
        Int(offset).IntTuple(shape).IntTuple(stride).Op(PickleOpcodes.NewFalse);
        Global("collections", "OrderedDict").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.Reduce);
        Op(PickleOpcodes.Tuple);
        return Op(PickleOpcodes.Reduce);
    }

    /// <summary>Appends STOP and returns the bytes.</summary>
    public byte[] Stop() => Op(PickleOpcodes.Stop).ToArray();

    /// <summary>Returns the bytes so far.</summary>
    public byte[] ToArray() => _bytes.ToArray();

    private static long[] ContiguousStride(long[] shape)
    {
        var stride = new long[shape.Length];
        long step = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            stride[d] = step;
            step *= Math.Max(shape[d], 1);
        }

        return stride;
    }
}

/// <summary>Builds <c>.pt</c> zip archives from raw entries with the project's zip writer, for malformed-file tests.</summary>
internal static class PtArchiveBuilder
{
    /// <summary>Returns a zip archive with exactly the given entries, in order.</summary>
    public static byte[] Zip(params (string Name, byte[] Data)[] entries)
    {
        using var stream = new MemoryStream();
        var zip = new ZipStoreWriter(stream);
        foreach (var (name, data) in entries)
        {
            zip.AddEntry(name, data);
        }

        zip.Finish();
        return stream.ToArray();
    }

    /// <summary>Returns a well-formed <c>.pt</c> archive under <c>archive/</c> with a pickle and storage records keyed by name.</summary>
    public static byte[] PtFile(byte[] pickle, params (string Key, byte[] Data)[] storages)
    {
        var entries = new List<(string, byte[])> { ("archive/data.pkl", pickle) };
        entries.AddRange(storages.Select(storage => ("archive/data/" + storage.Key, storage.Data)));
        entries.Add(("archive/version", "3\n"u8.ToArray()));
        return Zip([.. entries]);
    }

    /// <summary>Returns a pickle whose root is <c>{'t': tensor}</c> for one tensor built by <paramref name="tensor"/>.</summary>
    public static byte[] RootWithTensor(Action<PickleBuilder> tensor)
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("t");
        tensor(pickle);
        return pickle.Op(PickleOpcodes.SetItem).Stop();
    }

    /// <summary>Returns the little-endian bytes of float32 values.</summary>
    public static byte[] Floats(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }

        return bytes;
    }
}
