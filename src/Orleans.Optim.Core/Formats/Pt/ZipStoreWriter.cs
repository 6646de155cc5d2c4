using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Writer of zip archives whose entries are stored uncompressed, with entry data aligned to 64 bytes as
/// <c>torch.save</c> aligns it, and zip64 records where a size, offset or count needs them.
/// </summary>
/// <remarks>
/// Offsets in the archive count from the stream position at construction. The writer does not check entry names,
/// so tests can build malformed <c>.pt</c> layouts with it.
/// </remarks>
internal sealed class ZipStoreWriter
{
    /// <summary>Alignment of entry data in bytes, as in files that torch 1.13 writes.</summary>
    internal const int DataAlignment = 64;

    /// <summary>Header id of the padding extra field, the bytes <c>FB</c> as torch writes them.</summary>
    internal const ushort PaddingExtraFieldId = 0x4246;

    internal const uint LocalHeaderSignature = 0x04034b50;
    internal const uint CentralHeaderSignature = 0x02014b50;
    internal const uint EndOfCentralDirectorySignature = 0x06054b50;
    internal const uint Zip64EndOfCentralDirectorySignature = 0x06064b50;
    internal const uint Zip64LocatorSignature = 0x07064b50;
    internal const ushort Zip64ExtraFieldId = 0x0001;

    private const int LocalHeaderSize = 30;
    private const int CentralHeaderSize = 46;
    private const int EndOfCentralDirectorySize = 22;
    private const int Zip64EndOfCentralDirectorySize = 56;
    private const int Zip64LocatorSize = 20;
    private const ushort VersionDefault = 20;
    private const ushort VersionZip64 = 45;
    private const ushort FlagUtf8Name = 0x0800;

    // 1980-01-01 00:00, the earliest MS-DOS date, so that output does not depend on the clock.
    private const ushort DosTime = 0;
    private const ushort DosDate = (1 << 5) | 1;

    private readonly Stream _output;
    private readonly long _origin;
    private readonly bool _forceZip64;
    private readonly List<CentralEntry> _entries = [];
    private long _position;
    private bool _finished;

    /// <summary>Creates a writer that starts the archive at the current position of <paramref name="output"/>.</summary>
    /// <param name="output">Writable stream. Entries with a data callback also need it to be seekable.</param>
    /// <param name="forceZip64">Whether to write zip64 records even where 32-bit fields would do.</param>
    public ZipStoreWriter(Stream output, bool forceZip64 = false)
    {
        _output = output;
        _origin = output.CanSeek ? output.Position : 0;
        _forceZip64 = forceZip64;
    }

    /// <summary>Appends an entry whose data is in memory.</summary>
    public void AddEntry(string name, ReadOnlySpan<byte> data)
    {
        uint crc = Crc32.HashToUInt32(data);
        long headerOffset = WriteLocalHeader(name, data.Length, crc);
        _output.Write(data);
        _position += data.Length;
        _entries.Add(new CentralEntry(name, crc, data.Length, headerOffset));
    }

    /// <summary>
    /// Appends an entry whose data a callback writes, then seeks back to store its CRC-32 in the local header.
    /// </summary>
    /// <param name="name">Entry name.</param>
    /// <param name="size">Exact number of bytes the callback must write.</param>
    /// <param name="writeData">Callback that writes the data to the stream it receives.</param>
    /// <param name="dataSource">Description of the data for error messages, such as <c>StreamedTensor[float32, [3]]</c>.</param>
    /// <exception cref="InvalidOperationException">The callback wrote more or fewer than <paramref name="size"/> bytes.</exception>
    public void AddEntry(string name, long size, Action<Stream> writeData, string dataSource)
    {
        if (!_output.CanSeek)
        {
            throw new InvalidOperationException($"Entry '{name}' has streamed data, which needs a seekable output stream.");
        }

        long headerOffset = WriteLocalHeader(name, size, crc: 0);
        var sink = new EntryDataStream(_output, name, size, dataSource);
        writeData(sink);
        if (sink.BytesWritten != size)
        {
            throw new InvalidOperationException(
                $"The data callback of {dataSource} wrote {sink.BytesWritten} bytes for entry '{name}', but {size} are needed. " +
                "Make the callback write every element exactly once.");
        }

        _position += size;
        uint crc = sink.Crc;
        Span<byte> crcBytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(crcBytes, crc);
        _output.Seek(_origin + headerOffset + 14, SeekOrigin.Begin);
        _output.Write(crcBytes);
        _output.Seek(_origin + _position, SeekOrigin.Begin);
        _entries.Add(new CentralEntry(name, crc, size, headerOffset));
    }

    /// <summary>Writes the central directory and the end records. The writer accepts no entries after this.</summary>
    public void Finish()
    {
        if (_finished)
        {
            throw new InvalidOperationException("The zip archive is already finished.");
        }

        _finished = true;
        long directoryOffset = _position;
        foreach (var entry in _entries)
        {
            WriteCentralHeader(entry);
        }

        long directorySize = _position - directoryOffset;
        bool zip64 = _forceZip64
            || _entries.Count >= ushort.MaxValue
            || directoryOffset >= uint.MaxValue
            || directorySize >= uint.MaxValue;
        if (zip64)
        {
            WriteZip64End(directoryOffset, directorySize);
        }

        var end = new byte[EndOfCentralDirectorySize];
        BinaryPrimitives.WriteUInt32LittleEndian(end.AsSpan(0), EndOfCentralDirectorySignature);
        ushort count = zip64 ? ushort.MaxValue : (ushort)_entries.Count;
        BinaryPrimitives.WriteUInt16LittleEndian(end.AsSpan(8), count);
        BinaryPrimitives.WriteUInt16LittleEndian(end.AsSpan(10), count);
        BinaryPrimitives.WriteUInt32LittleEndian(end.AsSpan(12), zip64 ? uint.MaxValue : (uint)directorySize);
        BinaryPrimitives.WriteUInt32LittleEndian(end.AsSpan(16), zip64 ? uint.MaxValue : (uint)directoryOffset);
        WriteBytes(end);
        _output.Flush();
    }

    private long WriteLocalHeader(string name, long size, uint crc)
    {
        if (_finished)
        {
            throw new InvalidOperationException("The zip archive is already finished.");
        }

        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        if (nameBytes.Length > ushort.MaxValue)
        {
            throw new ArgumentException($"Zip entry name '{name[..100]}...' has {nameBytes.Length} UTF-8 bytes, more than the 65535 that zip allows.", nameof(name));
        }

        long headerOffset = _position;
        bool zip64 = _forceZip64 || size >= uint.MaxValue;
        int zip64ExtraSize = zip64 ? 4 + 16 : 0;

        // The padding field goes last, so the data starts right after it at a multiple of DataAlignment.
        long unpaddedDataStart = headerOffset + LocalHeaderSize + nameBytes.Length + zip64ExtraSize + 4;
        int padding = (int)((DataAlignment - (unpaddedDataStart % DataAlignment)) % DataAlignment);
        int extraSize = zip64ExtraSize + 4 + padding;

        var header = new byte[LocalHeaderSize + nameBytes.Length + extraSize];
        var span = header.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span[0..], LocalHeaderSignature);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], zip64 ? VersionZip64 : VersionDefault);
        BinaryPrimitives.WriteUInt16LittleEndian(span[6..], NameFlags(nameBytes, name));
        // Bytes 8-9: compression method 0, stored.
        BinaryPrimitives.WriteUInt16LittleEndian(span[10..], DosTime);
        BinaryPrimitives.WriteUInt16LittleEndian(span[12..], DosDate);
        BinaryPrimitives.WriteUInt32LittleEndian(span[14..], crc);
        uint size32 = zip64 ? uint.MaxValue : (uint)size;
        BinaryPrimitives.WriteUInt32LittleEndian(span[18..], size32);
        BinaryPrimitives.WriteUInt32LittleEndian(span[22..], size32);
        BinaryPrimitives.WriteUInt16LittleEndian(span[26..], (ushort)nameBytes.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(span[28..], (ushort)extraSize);
        nameBytes.CopyTo(span[LocalHeaderSize..]);

        var extra = span[(LocalHeaderSize + nameBytes.Length)..];
        if (zip64)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(extra[0..], Zip64ExtraFieldId);
            BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], 16);
            BinaryPrimitives.WriteInt64LittleEndian(extra[4..], size);
            BinaryPrimitives.WriteInt64LittleEndian(extra[12..], size);
            extra = extra[zip64ExtraSize..];
        }

        BinaryPrimitives.WriteUInt16LittleEndian(extra[0..], PaddingExtraFieldId);
        BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], (ushort)padding);
        extra[4..].Fill((byte)'Z');

        WriteBytes(header);
        return headerOffset;
    }

    private void WriteCentralHeader(CentralEntry entry)
    {
        byte[] nameBytes = Encoding.UTF8.GetBytes(entry.Name);
        bool sizeZip64 = _forceZip64 || entry.Size >= uint.MaxValue;
        bool offsetZip64 = _forceZip64 || entry.HeaderOffset >= uint.MaxValue;
        int zip64DataSize = (sizeZip64 ? 16 : 0) + (offsetZip64 ? 8 : 0);
        int extraSize = zip64DataSize > 0 ? 4 + zip64DataSize : 0;

        var header = new byte[CentralHeaderSize + nameBytes.Length + extraSize];
        var span = header.AsSpan();
        ushort version = extraSize > 0 ? VersionZip64 : VersionDefault;
        BinaryPrimitives.WriteUInt32LittleEndian(span[0..], CentralHeaderSignature);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], version);
        BinaryPrimitives.WriteUInt16LittleEndian(span[6..], version);
        BinaryPrimitives.WriteUInt16LittleEndian(span[8..], NameFlags(nameBytes, entry.Name));
        // Bytes 10-11: compression method 0, stored.
        BinaryPrimitives.WriteUInt16LittleEndian(span[12..], DosTime);
        BinaryPrimitives.WriteUInt16LittleEndian(span[14..], DosDate);
        BinaryPrimitives.WriteUInt32LittleEndian(span[16..], entry.Crc);
        uint size32 = sizeZip64 ? uint.MaxValue : (uint)entry.Size;
        BinaryPrimitives.WriteUInt32LittleEndian(span[20..], size32);
        BinaryPrimitives.WriteUInt32LittleEndian(span[24..], size32);
        BinaryPrimitives.WriteUInt16LittleEndian(span[28..], (ushort)nameBytes.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(span[30..], (ushort)extraSize);
        // Bytes 32-41: comment length, disk number, internal and external attributes, all 0.
        BinaryPrimitives.WriteUInt32LittleEndian(span[42..], offsetZip64 ? uint.MaxValue : (uint)entry.HeaderOffset);
        nameBytes.CopyTo(span[CentralHeaderSize..]);

        if (extraSize > 0)
        {
            // The zip64 field lists, in this order, only the values whose 32-bit field is 0xFFFFFFFF.
            var extra = span[(CentralHeaderSize + nameBytes.Length)..];
            BinaryPrimitives.WriteUInt16LittleEndian(extra[0..], Zip64ExtraFieldId);
            BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], (ushort)zip64DataSize);
            int at = 4;
            if (sizeZip64)
            {
                BinaryPrimitives.WriteInt64LittleEndian(extra[at..], entry.Size);
                BinaryPrimitives.WriteInt64LittleEndian(extra[(at + 8)..], entry.Size);
                at += 16;
            }

            if (offsetZip64)
            {
                BinaryPrimitives.WriteInt64LittleEndian(extra[at..], entry.HeaderOffset);
            }
        }

        WriteBytes(header);
    }

    private void WriteZip64End(long directoryOffset, long directorySize)
    {
        long recordOffset = _position;
        var record = new byte[Zip64EndOfCentralDirectorySize + Zip64LocatorSize];
        var span = record.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span[0..], Zip64EndOfCentralDirectorySignature);
        BinaryPrimitives.WriteInt64LittleEndian(span[4..], Zip64EndOfCentralDirectorySize - 12);
        BinaryPrimitives.WriteUInt16LittleEndian(span[12..], VersionZip64);
        BinaryPrimitives.WriteUInt16LittleEndian(span[14..], VersionZip64);
        // Bytes 16-23: this disk and the directory's disk, both 0.
        BinaryPrimitives.WriteInt64LittleEndian(span[24..], _entries.Count);
        BinaryPrimitives.WriteInt64LittleEndian(span[32..], _entries.Count);
        BinaryPrimitives.WriteInt64LittleEndian(span[40..], directorySize);
        BinaryPrimitives.WriteInt64LittleEndian(span[48..], directoryOffset);

        var locator = span[Zip64EndOfCentralDirectorySize..];
        BinaryPrimitives.WriteUInt32LittleEndian(locator[0..], Zip64LocatorSignature);
        BinaryPrimitives.WriteInt64LittleEndian(locator[8..], recordOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(locator[16..], 1);
        WriteBytes(record);
    }

    private static ushort NameFlags(byte[] nameBytes, string name) =>
        nameBytes.Length == name.Length ? (ushort)0 : FlagUtf8Name;

    private void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        _output.Write(bytes);
        _position += bytes.Length;
    }

    private sealed record CentralEntry(string Name, uint Crc, long Size, long HeaderOffset);

    /// <summary>Write-only view of the output for one entry that counts bytes, computes the CRC-32 and stops overruns.</summary>
    private sealed class EntryDataStream(Stream output, string entryName, long size, string dataSource) : Stream
    {
        private readonly Crc32 _crc = new();

        public long BytesWritten { get; private set; }

        public uint Crc => _crc.GetCurrentHashAsUInt32();

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (buffer.Length > size - BytesWritten)
            {
                throw new InvalidOperationException(
                    $"The data callback of {dataSource} wrote more than the {size} bytes of entry '{entryName}'. " +
                    "Make the callback write every element exactly once.");
            }

            _crc.Append(buffer);
            output.Write(buffer);
            BytesWritten += buffer.Length;
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void WriteByte(byte value) => Write([value]);

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
