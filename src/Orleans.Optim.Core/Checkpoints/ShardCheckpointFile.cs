using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Checkpoints;

/// <summary>One state entry as a shard file lists it: its kind, scalar value, and where its slice data sits.</summary>
/// <param name="Name">Torch's entry name.</param>
/// <param name="Kind">Kind of value.</param>
/// <param name="ScalarDType">Dtype of a 0-d tensor entry.</param>
/// <param name="Number">Value of a scalar entry.</param>
/// <param name="DataOffset">Byte offset of a slice entry's float32 data in the file; -1 for scalars.</param>
public sealed record ShardFileEntry(string Name, StateValueKind Kind, DType ScalarDType, double Number, long DataOffset);

/// <summary>The header of a shard file: which slice, at which step, and where its data sits.</summary>
public sealed record ShardFileHeader(
    ShardInfo Shard,
    long Step,
    StateOrderKey OrderKey,
    bool HasState,
    long ValuesOffset,
    IReadOnlyList<ShardFileEntry> Entries)
{
    /// <summary>Returns the entry with the given name.</summary>
    public ShardFileEntry? Find(string name) => Entries.FirstOrDefault(e => e.Name == name);
}

/// <summary>
/// The binary file one shard writes into a sharded checkpoint: a header that lists the slice, its step and its state
/// entries, then the float32 master values and each slice entry's data, so that a reader can copy any element range
/// of any entry without loading the rest.
/// </summary>
/// <remarks>Layout, little-endian: magic <c>OOPTSHRD</c>, version, the header fields, then the data blocks in order.</remarks>
public static class ShardCheckpointFile
{
    private const int Version = 1;
    private const int MaxEntries = 64;
    private static readonly byte[] s_magic = "OOPTSHRD"u8.ToArray();

    /// <summary>Writes a shard's slice at one step and returns the SHA-256 (hex) and size of what was written.</summary>
    public static async Task<(string Sha256, long Bytes)> WriteAsync(
        Stream output, ShardInfo shard, long step, float[] values, SliceState? state, StateOrderKey orderKey)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long written = 0;
        async Task Write(ReadOnlyMemory<byte> bytes)
        {
            hash.AppendData(bytes.Span);
            await output.WriteAsync(bytes);
            written += bytes.Length;
        }

        await Write(EncodeHeader(shard, step, state, orderKey));
        await Write(MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        foreach (var entry in state?.Entries ?? [])
        {
            if (entry.Kind == StateValueKind.ParamTensor)
            {
                await Write(MemoryMarshal.AsBytes(entry.Values.AsSpan()).ToArray());
            }
        }

        return (Convert.ToHexStringLower(hash.GetHashAndReset()), written);
    }

    /// <summary>Reads the header.</summary>
    /// <exception cref="InvalidDataException">The stream is not a shard file, or its header is damaged.</exception>
    public static ShardFileHeader ReadHeader(Stream input)
    {
        using var reader = new BinaryReader(input, Encoding.UTF8, leaveOpen: true);
        try
        {
            if (!reader.ReadBytes(s_magic.Length).AsSpan().SequenceEqual(s_magic))
            {
                throw new InvalidDataException("Not a shard checkpoint file: the magic bytes 'OOPTSHRD' are missing.");
            }

            int version = reader.ReadInt32();
            if (version != Version)
            {
                throw new InvalidDataException($"Unsupported shard checkpoint file version {version}; this build reads version {Version}.");
            }

            var shard = new ShardInfo(reader.ReadInt32(), reader.ReadInt64(), reader.ReadInt64(), reader.ReadInt32());
            long step = reader.ReadInt64();
            var orderKey = new StateOrderKey(reader.ReadInt64(), reader.ReadInt64());
            bool hasState = reader.ReadBoolean();
            int count = reader.ReadInt32();
            if (shard.Length < 0 || count is < 0 or > MaxEntries)
            {
                throw new InvalidDataException($"Damaged shard checkpoint header: length {shard.Length}, {count} entries.");
            }

            var raw = new List<(string Name, StateValueKind Kind, DType DType, double Number)>();
            for (int i = 0; i < count; i++)
            {
                raw.Add((reader.ReadString(), (StateValueKind)reader.ReadByte(), (DType)reader.ReadByte(), reader.ReadDouble()));
            }

            long valuesOffset = input.Position;
            long next = valuesOffset + (long)shard.Length * sizeof(float);
            var entries = new List<ShardFileEntry>();
            foreach (var (name, kind, dtype, number) in raw)
            {
                long offset = -1;
                if (kind == StateValueKind.ParamTensor)
                {
                    offset = next;
                    next += (long)shard.Length * sizeof(float);
                }

                entries.Add(new ShardFileEntry(name, kind, dtype, number, offset));
            }

            if (input.CanSeek && input.Length != next)
            {
                throw new InvalidDataException($"Damaged shard checkpoint: the header needs {next} bytes, the file has {input.Length}.");
            }

            return new ShardFileHeader(shard, step, orderKey, hasState, valuesOffset, entries);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("Damaged shard checkpoint: the file ends inside its header.", e);
        }
    }

    /// <summary>Copies <paramref name="destination"/>.Length elements starting at <paramref name="elementOffset"/> of a data block.</summary>
    /// <param name="input">A seekable stream over the shard file.</param>
    /// <param name="dataOffset">The block's offset: <see cref="ShardFileHeader.ValuesOffset"/> or an entry's <see cref="ShardFileEntry.DataOffset"/>.</param>
    /// <param name="elementOffset">First element to copy within the slice.</param>
    /// <param name="destination">Receives the elements.</param>
    public static async Task ReadRangeAsync(Stream input, long dataOffset, long elementOffset, Memory<float> destination)
    {
        input.Seek(dataOffset + elementOffset * sizeof(float), SeekOrigin.Begin);
        var bytes = new byte[destination.Length * sizeof(float)];
        await input.ReadExactlyAsync(bytes);
        MemoryMarshal.Cast<byte, float>(bytes).CopyTo(destination.Span);
    }

    /// <summary>Returns the SHA-256 (hex) of a whole stream, read from its current position.</summary>
    public static async Task<string> HashAsync(Stream input)
    {
        using var sha = SHA256.Create();
        return Convert.ToHexStringLower(await sha.ComputeHashAsync(input));
    }

    private static byte[] EncodeHeader(ShardInfo shard, long step, SliceState? state, StateOrderKey orderKey)
    {
        using var memory = new MemoryStream();
        using (var writer = new BinaryWriter(memory, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(s_magic);
            writer.Write(Version);
            writer.Write(shard.Index);
            writer.Write(shard.ParamId);
            writer.Write(shard.Offset);
            writer.Write(shard.Length);
            writer.Write(step);
            writer.Write(orderKey.Step);
            writer.Write(orderKey.Position);
            writer.Write(state is not null);
            writer.Write(state?.Entries.Count ?? 0);
            foreach (var entry in state?.Entries ?? [])
            {
                writer.Write(entry.Name);
                writer.Write((byte)entry.Kind);
                writer.Write((byte)entry.ScalarDType);
                writer.Write(entry.Number);
            }
        }

        return memory.ToArray();
    }
}
