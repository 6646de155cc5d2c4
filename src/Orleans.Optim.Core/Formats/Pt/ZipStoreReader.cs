using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;

namespace Orleans.Optim.Formats.Pt;

/// <summary>One entry of the central directory of a zip archive.</summary>
/// <param name="Name">Entry name as stored, such as <c>archive/data.pkl</c>.</param>
/// <param name="NameBytes">Entry name bytes, to compare with the local header.</param>
/// <param name="Method">Compression method, where 0 is stored.</param>
/// <param name="Crc32">CRC-32 of the uncompressed data.</param>
/// <param name="CompressedSize">Size of the data in the archive in bytes.</param>
/// <param name="Size">Uncompressed size in bytes.</param>
/// <param name="LocalHeaderOffset">Offset of the local header from the start of the archive.</param>
internal sealed record ZipEntryInfo(
    string Name, byte[] NameBytes, ushort Method, uint Crc32, long CompressedSize, long Size, long LocalHeaderOffset);

/// <summary>Receiver of one chunk of entry data and the chunk's offset within the entry.</summary>
internal delegate void EntryChunkHandler(ReadOnlySpan<byte> chunk, long offset);

/// <summary>
/// Reader of zip archives with stored (uncompressed) entries that checks every size and offset against the
/// stream length before it allocates or seeks, and checks the CRC-32 of each entry it reads.
/// </summary>
/// <remarks>The archive spans from the stream position at <see cref="Open"/> to the end of the stream.</remarks>
internal sealed class ZipStoreReader
{
    private const int LocalHeaderSize = 30;
    private const int CentralHeaderSize = 46;
    private const int EndOfCentralDirectorySize = 22;
    private const int Zip64EndOfCentralDirectorySize = 56;
    private const int Zip64LocatorSize = 20;
    private const int MaxCommentSize = ushort.MaxValue;
    private const int ChunkSize = 1 << 20;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly Stream _stream;
    private readonly long _origin;
    private readonly long _length;
    private readonly long _directoryOffset;

    // Offset of the next local header after each entry's own, or of the central directory after the last one.
    // An entry's header and data must end there, so that no two entries share bytes.
    private readonly Dictionary<ZipEntryInfo, long> _regionEnds;

    private ZipStoreReader(Stream stream, long origin, long length, long directoryOffset, IReadOnlyList<ZipEntryInfo> entries)
    {
        _stream = stream;
        _origin = origin;
        _length = length;
        _directoryOffset = directoryOffset;
        Entries = entries;
        _regionEnds = FindRegionEnds(entries, directoryOffset);
    }

    /// <summary>Entries in central directory order.</summary>
    public IReadOnlyList<ZipEntryInfo> Entries { get; }

    /// <summary>Reads the central directory of the archive that starts at the current position of <paramref name="stream"/>.</summary>
    /// <exception cref="PtFormatException">The stream does not contain a valid zip archive of stored entries.</exception>
    public static ZipStoreReader Open(Stream stream)
    {
        long origin = stream.Position;
        long length = stream.Length - origin;
        if (length == 0)
        {
            throw new PtFormatException("The file is empty, so it is not a .pt zip archive. Pass a file written by torch.save.", position: 0);
        }

        var head = new byte[(int)Math.Min(length, 16)];
        ReadAt(stream, origin, head, 0, length);
        // An archive starts with its first local header, or with the end record when it has no entries.
        uint signature = head.Length >= 4 ? BinaryPrimitives.ReadUInt32LittleEndian(head) : 0;
        if (signature is not (ZipStoreWriter.LocalHeaderSignature or ZipStoreWriter.EndOfCentralDirectorySignature))
        {
            throw NotAZip(head, length);
        }

        int tailLength = (int)Math.Min(length, EndOfCentralDirectorySize + MaxCommentSize + Zip64LocatorSize);
        var tail = new byte[tailLength];
        long tailStart = length - tailLength;
        ReadAt(stream, origin, tail, tailStart, length);
        int endAt = FindEndOfCentralDirectory(tail);
        if (endAt < 0)
        {
            throw new PtFormatException(
                $"The zip archive is truncated: its end of central directory record is missing ({length} bytes read). " +
                "The file was cut off while being written or copied. Copy or save it again.");
        }

        long endOffset = tailStart + endAt;
        var end = tail.AsSpan(endAt);
        long entryCount = BinaryPrimitives.ReadUInt16LittleEndian(end[10..]);
        long directorySize = BinaryPrimitives.ReadUInt32LittleEndian(end[12..]);
        long directoryOffset = BinaryPrimitives.ReadUInt32LittleEndian(end[16..]);
        long directoryLimit = endOffset;

        if (endAt >= Zip64LocatorSize
            && BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(endAt - Zip64LocatorSize)) == ZipStoreWriter.Zip64LocatorSignature)
        {
            long recordOffset = BinaryPrimitives.ReadInt64LittleEndian(tail.AsSpan(endAt - Zip64LocatorSize + 8));
            long locatorOffset = endOffset - Zip64LocatorSize;
            if (recordOffset < 0 || recordOffset > locatorOffset - Zip64EndOfCentralDirectorySize)
            {
                throw new PtFormatException(
                    $"The zip64 end of central directory offset {recordOffset} is outside the file. The file is corrupt. Re-create it.",
                    position: locatorOffset);
            }

            var record = new byte[Zip64EndOfCentralDirectorySize];
            ReadAt(stream, origin, record, recordOffset, length);
            if (BinaryPrimitives.ReadUInt32LittleEndian(record) != ZipStoreWriter.Zip64EndOfCentralDirectorySignature)
            {
                throw new PtFormatException(
                    "The zip64 end of central directory record has an invalid signature. The file is corrupt. Re-create it.",
                    position: recordOffset);
            }

            entryCount = BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(32));
            directorySize = BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(40));
            directoryOffset = BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(48));
            directoryLimit = recordOffset;
        }
        else if (entryCount == ushort.MaxValue || directorySize == uint.MaxValue || directoryOffset == uint.MaxValue)
        {
            throw new PtFormatException(
                "The zip archive needs zip64 records, but the zip64 end of central directory locator is missing. The file is corrupt. Re-create it.",
                position: endOffset);
        }

        if (directoryOffset < 0 || directorySize < 0 || directoryOffset > directoryLimit || directorySize > directoryLimit - directoryOffset)
        {
            throw new PtFormatException(
                $"The zip central directory (offset {directoryOffset}, {directorySize} bytes) lies outside the file of {length} bytes. " +
                "The file is truncated or corrupt. Copy or save it again.",
                position: endOffset);
        }

        if (directorySize > Array.MaxLength)
        {
            throw new PtFormatException(
                $"The zip central directory has {directorySize} bytes, more than this reader supports. A .pt file has a few bytes per tensor there; " +
                "the file is corrupt or not a .pt file.",
                position: endOffset);
        }

        if (entryCount < 0 || entryCount > directorySize / CentralHeaderSize)
        {
            throw new PtFormatException(
                $"The zip archive declares {entryCount} entries, which do not fit in its central directory of {directorySize} bytes. The file is corrupt. Re-create it.",
                position: endOffset);
        }

        var directory = new byte[directorySize];
        ReadAt(stream, origin, directory, directoryOffset, length);
        var entries = ParseCentralDirectory(directory, directoryOffset, (int)entryCount);
        return new ZipStoreReader(stream, origin, length, directoryOffset, entries);
    }

    /// <summary>
    /// Reads the data of <paramref name="entry"/> in chunks, passing each chunk and its offset within the entry to
    /// <paramref name="consume"/>, then checks the CRC-32.
    /// </summary>
    /// <exception cref="PtFormatException">The entry is compressed, truncated or fails its CRC check.</exception>
    public void ReadEntry(ZipEntryInfo entry, EntryChunkHandler consume)
    {
        long dataOffset = GetDataOffset(entry);
        var crc = new Crc32();
        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(ChunkSize, Math.Max(entry.Size, 1)));
        try
        {
            long done = 0;
            while (done < entry.Size)
            {
                int count = (int)Math.Min(buffer.Length, entry.Size - done);
                ReadAt(_stream, _origin, buffer.AsSpan(0, count), dataOffset + done, _length);
                var chunk = buffer.AsSpan(0, count);
                crc.Append(chunk);
                consume(chunk, done);
                done += count;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        uint actual = crc.GetCurrentHashAsUInt32();
        if (actual != entry.Crc32)
        {
            throw new PtFormatException(
                $"CRC-32 mismatch in entry '{entry.Name}': the zip directory stores {entry.Crc32:x8}, the data has {actual:x8}. " +
                "The file is corrupt. Copy or save it again.",
                entry.Name);
        }
    }

    /// <summary>Reads the whole data of <paramref name="entry"/> and checks its CRC-32.</summary>
    /// <exception cref="PtFormatException">The entry is compressed, truncated or fails its CRC check.</exception>
    public byte[] ReadAll(ZipEntryInfo entry)
    {
        // GetDataOffset checks that the declared size fits in the file before anything is allocated.
        GetDataOffset(entry);
        var data = new byte[entry.Size];
        ReadEntry(entry, (chunk, offset) => chunk.CopyTo(data.AsSpan((int)offset)));
        return data;
    }

    /// <summary>Returns the offset of the data of <paramref name="entry"/> after checking its local header and bounds.</summary>
    /// <exception cref="PtFormatException">The entry is compressed, its local header is invalid, or its data runs past the file.</exception>
    public long GetDataOffset(ZipEntryInfo entry)
    {
        if (entry.Method != 0)
        {
            throw new PtFormatException(
                $"Entry '{entry.Name}' is compressed (zip method {entry.Method}), but torch writes .pt entries uncompressed. " +
                "Re-save the object with torch.save instead of repacking the zip.",
                entry.Name);
        }

        if (entry.CompressedSize != entry.Size)
        {
            throw new PtFormatException(
                $"Entry '{entry.Name}' is stored uncompressed but declares {entry.CompressedSize} stored bytes and {entry.Size} data bytes. " +
                "The file is corrupt. Re-create it.",
                entry.Name);
        }

        long regionEnd = _regionEnds[entry];
        if (entry.LocalHeaderOffset > regionEnd - LocalHeaderSize)
        {
            throw regionEnd == _directoryOffset ? Truncated(entry, entry.LocalHeaderOffset) : Overlapping(entry, regionEnd);
        }

        var header = new byte[LocalHeaderSize];
        ReadAt(_stream, _origin, header, entry.LocalHeaderOffset, _length);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != ZipStoreWriter.LocalHeaderSignature)
        {
            throw new PtFormatException(
                $"The local header of entry '{entry.Name}' has an invalid signature. The file is corrupt. Re-create it.",
                entry.Name,
                entry.LocalHeaderOffset);
        }

        int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(26));
        int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(28));
        long dataOffset = entry.LocalHeaderOffset + LocalHeaderSize + nameLength + extraLength;
        if (dataOffset > regionEnd || entry.Size > regionEnd - dataOffset)
        {
            throw regionEnd == _directoryOffset ? Truncated(entry, entry.LocalHeaderOffset) : Overlapping(entry, regionEnd);
        }

        var localName = new byte[nameLength];
        ReadAt(_stream, _origin, localName, entry.LocalHeaderOffset + LocalHeaderSize, _length);
        if (!localName.AsSpan().SequenceEqual(entry.NameBytes))
        {
            throw new PtFormatException(
                $"The local header of entry '{entry.Name}' names a different entry. The file is corrupt. Re-create it.",
                entry.Name,
                entry.LocalHeaderOffset);
        }

        return dataOffset;
    }

    /// <summary>Returns the offset where the local header and data of each entry must end, and rejects entries that share a local header.</summary>
    /// <exception cref="PtFormatException">Two entries name the same local header.</exception>
    private static Dictionary<ZipEntryInfo, long> FindRegionEnds(IReadOnlyList<ZipEntryInfo> entries, long directoryOffset)
    {
        var byOffset = entries.OrderBy(entry => entry.LocalHeaderOffset).ToList();
        var ends = new Dictionary<ZipEntryInfo, long>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < byOffset.Count; i++)
        {
            var entry = byOffset[i];
            if (i + 1 < byOffset.Count && byOffset[i + 1].LocalHeaderOffset == entry.LocalHeaderOffset)
            {
                throw new PtFormatException(
                    $"Entries '{entry.Name}' and '{byOffset[i + 1].Name}' share the local header at offset {entry.LocalHeaderOffset}. " +
                    "Entries of a .pt file never share bytes, so the file is corrupt or crafted to look larger than it is. Re-create it.",
                    byOffset[i + 1].Name,
                    entry.LocalHeaderOffset);
            }

            ends[entry] = i + 1 < byOffset.Count ? byOffset[i + 1].LocalHeaderOffset : directoryOffset;
        }

        return ends;
    }

    private static List<ZipEntryInfo> ParseCentralDirectory(byte[] directory, long directoryOffset, int entryCount)
    {
        var entries = new List<ZipEntryInfo>(entryCount);
        var names = new HashSet<string>(StringComparer.Ordinal);
        int at = 0;
        for (int i = 0; i < entryCount; i++)
        {
            long position = directoryOffset + at;
            if (directory.Length - at < CentralHeaderSize
                || BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(at)) != ZipStoreWriter.CentralHeaderSignature)
            {
                throw new PtFormatException(
                    $"Zip central directory entry {i} is missing or has an invalid signature. The file is corrupt. Re-create it.",
                    position: position);
            }

            var header = directory.AsSpan(at, CentralHeaderSize);
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(header[8..]);
            ushort method = BinaryPrimitives.ReadUInt16LittleEndian(header[10..]);
            uint crc = BinaryPrimitives.ReadUInt32LittleEndian(header[16..]);
            long compressedSize = BinaryPrimitives.ReadUInt32LittleEndian(header[20..]);
            long size = BinaryPrimitives.ReadUInt32LittleEndian(header[24..]);
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(header[28..]);
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(header[30..]);
            int commentLength = BinaryPrimitives.ReadUInt16LittleEndian(header[32..]);
            long headerOffset = BinaryPrimitives.ReadUInt32LittleEndian(header[42..]);
            if (directory.Length - at - CentralHeaderSize < nameLength + extraLength + commentLength)
            {
                throw new PtFormatException(
                    $"Zip central directory entry {i} runs past the end of the directory. The file is corrupt. Re-create it.",
                    position: position);
            }

            byte[] nameBytes = directory.AsSpan(at + CentralHeaderSize, nameLength).ToArray();
            string name;
            try
            {
                name = StrictUtf8.GetString(nameBytes);
            }
            catch (DecoderFallbackException ex)
            {
                throw new PtFormatException(
                    $"Zip entry name {Convert.ToHexString(nameBytes)} is not valid UTF-8. The file was not written by torch.save. Re-create it.",
                    position: position,
                    innerException: ex);
            }

            if ((flags & 1) != 0)
            {
                throw new PtFormatException(
                    $"Entry '{name}' is encrypted, which torch never writes. Decrypt the archive or re-save the object with torch.save.",
                    name);
            }

            var extra = directory.AsSpan(at + CentralHeaderSize + nameLength, extraLength);
            ReadZip64Extra(extra, name, position, ref size, ref compressedSize, ref headerOffset);
            if (!names.Add(name))
            {
                throw new PtFormatException(
                    $"Entry '{name}' occurs twice in the zip archive. The file is corrupt or was tampered with. Re-create it.",
                    name);
            }

            entries.Add(new ZipEntryInfo(name, nameBytes, method, crc, compressedSize, size, headerOffset));
            at += CentralHeaderSize + nameLength + extraLength + commentLength;
        }

        return entries;
    }

    private static void ReadZip64Extra(
        ReadOnlySpan<byte> extra, string name, long position, ref long size, ref long compressedSize, ref long headerOffset)
    {
        bool needsSize = size == uint.MaxValue;
        bool needsCompressedSize = compressedSize == uint.MaxValue;
        bool needsOffset = headerOffset == uint.MaxValue;
        if (!needsSize && !needsCompressedSize && !needsOffset)
        {
            return;
        }

        while (extra.Length >= 4)
        {
            ushort id = BinaryPrimitives.ReadUInt16LittleEndian(extra);
            int fieldLength = BinaryPrimitives.ReadUInt16LittleEndian(extra[2..]);
            if (fieldLength > extra.Length - 4)
            {
                break;
            }

            var field = extra.Slice(4, fieldLength);
            if (id == ZipStoreWriter.Zip64ExtraFieldId)
            {
                // Values appear in this order, and only those whose 32-bit field is 0xFFFFFFFF.
                int needed = (needsSize ? 8 : 0) + (needsCompressedSize ? 8 : 0) + (needsOffset ? 8 : 0);
                if (field.Length < needed)
                {
                    break;
                }

                int at = 0;
                if (needsSize)
                {
                    size = BinaryPrimitives.ReadInt64LittleEndian(field[at..]);
                    at += 8;
                }

                if (needsCompressedSize)
                {
                    compressedSize = BinaryPrimitives.ReadInt64LittleEndian(field[at..]);
                    at += 8;
                }

                if (needsOffset)
                {
                    headerOffset = BinaryPrimitives.ReadInt64LittleEndian(field[at..]);
                }

                if (size < 0 || compressedSize < 0 || headerOffset < 0)
                {
                    break;
                }

                return;
            }

            extra = extra[(4 + fieldLength)..];
        }

        throw new PtFormatException(
            $"Entry '{name}' needs a zip64 extra field with its sizes and offset, but that field is missing or invalid. The file is corrupt. Re-create it.",
            name,
            position);
    }

    private static int FindEndOfCentralDirectory(byte[] tail)
    {
        for (int at = tail.Length - EndOfCentralDirectorySize; at >= 0; at--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(at)) == ZipStoreWriter.EndOfCentralDirectorySignature)
            {
                int commentLength = BinaryPrimitives.ReadUInt16LittleEndian(tail.AsSpan(at + 20));
                if (at + EndOfCentralDirectorySize + commentLength <= tail.Length)
                {
                    return at;
                }
            }
        }

        return -1;
    }

    private static PtFormatException NotAZip(byte[] head, long length)
    {
        // torch before 1.6, and later torch with _use_new_zipfile_serialization=False, writes a bare pickle
        // stream that starts with PROTO 2 and then the magic number 0x1950a86a20f9469cfc6c as LONG1.
        ReadOnlySpan<byte> legacyMagic = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
        if (head.AsSpan().StartsWith(legacyMagic))
        {
            return new PtFormatException(
                "The file uses torch's legacy .pt format (torch before 1.6, or torch.save with _use_new_zipfile_serialization=False), " +
                "which is a bare pickle stream rather than a zip archive. Re-save it in Python with torch.save(torch.load(path), path), " +
                "using torch 1.6 or later with default settings, then load it again.",
                position: 0);
        }

        if (head.Length >= 2 && head[0] == 0x80 && head[1] <= 5)
        {
            return new PtFormatException(
                "The file is a bare pickle stream, not a torch .pt zip archive. Save the object with torch.save, which writes a zip archive.",
                position: 0);
        }

        string start = Convert.ToHexString(head.AsSpan(0, Math.Min(head.Length, 4)));
        return new PtFormatException(
            $"The file is not a .pt zip archive: it is {length} bytes long and starts with 0x{start} instead of the zip signature 0x504B0304. " +
            "Pass a file written by torch.save.",
            position: 0);
    }

    private static PtFormatException Overlapping(ZipEntryInfo entry, long nextHeaderOffset) =>
        new(
            $"The data of entry '{entry.Name}' ({entry.Size} bytes) runs into the next entry, whose local header is at offset {nextHeaderOffset}. " +
            "Entries of a .pt file never share bytes, so the file is corrupt or crafted to look larger than it is. Re-create it.",
            entry.Name,
            entry.LocalHeaderOffset);

    private static PtFormatException Truncated(ZipEntryInfo entry, long position) =>
        new(
            $"The data of entry '{entry.Name}' ({entry.Size} bytes) runs past the file's entry area. " +
            "The file is truncated or corrupt. Copy or save it again.",
            entry.Name,
            position);

    private static void ReadAt(Stream stream, long origin, Span<byte> destination, long offset, long length)
    {
        if (offset < 0 || offset > length - destination.Length)
        {
            throw new PtFormatException(
                $"A zip record at offset {offset} ({destination.Length} bytes) lies outside the file of {length} bytes. " +
                "The file is truncated or corrupt. Copy or save it again.",
                position: offset);
        }

        stream.Seek(origin + offset, SeekOrigin.Begin);
        try
        {
            stream.ReadExactly(destination);
        }
        catch (EndOfStreamException ex)
        {
            throw new PtFormatException(
                $"The file ended while reading {destination.Length} bytes at offset {offset}. The file is truncated. Copy or save it again.",
                position: offset,
                innerException: ex);
        }
    }

    private static void ReadAt(Stream stream, long origin, byte[] destination, long offset, long length) =>
        ReadAt(stream, origin, destination.AsSpan(), offset, length);
}
