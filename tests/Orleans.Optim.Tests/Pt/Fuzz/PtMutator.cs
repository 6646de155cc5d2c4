using System.Buffers.Binary;
using System.Text;
using Orleans.Optim.Formats.Pt;

namespace Orleans.Optim.Tests.Pt.Fuzz;

/// <summary>
/// What a <see cref="Mutation"/> changes. Kinds before <see cref="FlipBit"/> change one entry of the archive and
/// write a new zip with valid CRC-32s, so that the change reaches the pickle and tensor code. The later kinds change
/// the bytes of the whole file.
/// </summary>
internal enum MutationKind
{
    /// <summary>Sets one byte of <c>data.pkl</c> to an interesting value.</summary>
    PickleSetByte,

    /// <summary>Replaces the byte of one opcode with another opcode, keeping the old argument bytes.</summary>
    PickleReplaceOpcode,

    /// <summary>Sets the argument, length prefix or text line of one opcode to an interesting value.</summary>
    PickleSetArgument,

    /// <summary>Points one memo PUT or GET to another index.</summary>
    PickleChangeMemoIndex,

    /// <summary>Deletes a run of opcodes.</summary>
    PickleDeleteOperations,

    /// <summary>Repeats a run of opcodes up to 256 times right after itself.</summary>
    PickleDuplicateOperations,

    /// <summary>Inserts one opcode of any kind with a minimal argument.</summary>
    PickleInsertOpcode,

    /// <summary>Inserts a reference to an allowed or forbidden global with GLOBAL, STACK_GLOBAL or INST.</summary>
    PickleInsertGlobal,

    /// <summary>Swaps two opcodes.</summary>
    PickleSwapOperations,

    /// <summary>Cuts <c>data.pkl</c> short.</summary>
    PickleTruncate,

    /// <summary>Inserts up to 4,096 calls of a memoized global on a memoized tuple, each call 6 to 12 bytes long.</summary>
    PickleRepeatMemoCall,

    /// <summary>Inserts up to 64 pairs of DUP and TUPLE2 (or TUPLE1), which nest a value in tuples that contain the level below twice (or once).</summary>
    PickleNestShared,

    /// <summary>Shortens or lengthens a <c>data/&lt;key&gt;</c> storage record.</summary>
    StorageResize,

    /// <summary>Removes one entry.</summary>
    EntryDrop,

    /// <summary>Adds a second entry with the name of an existing one.</summary>
    EntryDuplicate,

    /// <summary>Renames one entry.</summary>
    EntryRename,

    /// <summary>Replaces the text of the <c>version</c> record.</summary>
    VersionText,

    /// <summary>Swaps the positions of two entries.</summary>
    EntrySwap,

    /// <summary>Writes the archive with zip64 records.</summary>
    RezipAsZip64,

    /// <summary>Flips one bit of the file.</summary>
    FlipBit,

    /// <summary>Sets one byte of the file to an interesting value.</summary>
    SetByte,

    /// <summary>Sets 2, 4 or 8 bytes of the file to an interesting little-endian value.</summary>
    SetWord,

    /// <summary>Cuts the file short.</summary>
    Truncate,

    /// <summary>Appends bytes to the file.</summary>
    Extend,

    /// <summary>Copies a chunk of the file to another place.</summary>
    DuplicateChunk,

    /// <summary>Removes a chunk of the file.</summary>
    DeleteChunk,

    /// <summary>Sets a size, offset, count, CRC, method or length field of a zip header to an interesting value.</summary>
    ZipField,
}

/// <summary>
/// One change to a <c>.pt</c> file. <see cref="A"/>, <see cref="B"/> and <see cref="C"/> are random numbers that
/// the kind maps to a position, a length or a value, taken modulo the size of the file as it is at that point.
/// </summary>
internal readonly record struct Mutation(MutationKind Kind, uint A, uint B, uint C)
{
    /// <summary>Whether the mutation changes one entry of the archive rather than the bytes of the whole file.</summary>
    public bool ChangesEntry => Kind < MutationKind.FlipBit;
}

/// <summary>A valid file that the fuzzer mutates, and its zip entries when it is a zip archive.</summary>
internal sealed record FuzzSeed(string Name, byte[] File, IReadOnlyList<(string Name, byte[] Data)>? Entries)
{
    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>Applies <see cref="Mutation"/> lists to seed files. The same seed and list always give the same bytes.</summary>
internal static class PtMutator
{
    private const int TailRegion = 600;

    private static readonly ulong[] InterestingWords =
    [
        0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1UL << 32,
        0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, ulong.MaxValue,
    ];

    private static readonly byte[] InterestingBytes = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0x40, 0x0A, 0x28];

    private static readonly string[] InterestingLines =
    [
        "", "0", "-1", "00", "01", "1e309", "nan", "-inf", "99999999999999999999999", "9223372036854775808",
        "-9223372036854775808", "4294967296", "x", "'", "'\\x4'", "\"a\"", "\\u12", "\\U0010FFFF", "0L", "1.5",
    ];

    private static readonly (string Module, string Name)[] Globals =
    [
        ("os", "system"), ("builtins", "eval"), ("subprocess", "Popen"), ("posix", "system"), ("__main__", "Payload"),
        ("collections", "OrderedDict"), ("collections", "Counter"), ("collections", "defaultdict"), ("builtins", "dict"),
        ("builtins", "getattr"), ("__builtin__", "getattr"), ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"), ("torch", "FloatStorage"), ("torch", "LongStorage"),
        ("torch", "ComplexFloatStorage"), ("torch.optim.lr_scheduler", "OneCycleLR"), ("torch.optim.adam", "Adam"),
        ("torch", "load"), ("", ""), ("collections", ""),
    ];

    private static readonly string[] VersionTexts = ["", "0", "1", "3", "3\n", "10", "11", "-1", "99999999999", " 3 ", "3\u00e9", new string('3', 65)];

    // Offsets and sizes of the fields of each zip record that hold sizes, offsets, counts, CRCs, methods or lengths.
    private static readonly Dictionary<uint, (int Offset, int Size)[]> ZipFields = new()
    {
        [ZipStoreWriter.LocalHeaderSignature] = [(6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)],
        [ZipStoreWriter.CentralHeaderSignature] = [(8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2), (42, 4)],
        [ZipStoreWriter.EndOfCentralDirectorySignature] = [(4, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2)],
        [ZipStoreWriter.Zip64EndOfCentralDirectorySignature] = [(4, 8), (24, 8), (32, 8), (40, 8), (48, 8)],
        [ZipStoreWriter.Zip64LocatorSignature] = [(8, 8), (16, 4)],
    };

    /// <summary>Returns the seed's file with every mutation applied: first those that change entries, then the rest, each group in order.</summary>
    public static byte[] Apply(FuzzSeed seed, IReadOnlyList<Mutation> mutations)
    {
        byte[] file = seed.File;
        if (seed.Entries is not null && mutations.Any(m => m.ChangesEntry))
        {
            var entries = seed.Entries.Select(e => (e.Name, e.Data)).ToList();
            bool zip64 = false;
            foreach (var mutation in mutations.Where(m => m.ChangesEntry))
            {
                ApplyToEntries(entries, mutation, ref zip64);
            }

            file = Zip(entries, zip64);
        }

        var bytes = new List<byte>(file);
        foreach (var mutation in mutations.Where(m => !m.ChangesEntry))
        {
            ApplyToFile(bytes, mutation);
        }

        return [.. bytes];
    }

    private static void ApplyToEntries(List<(string Name, byte[] Data)> entries, Mutation m, ref bool zip64)
    {
        if (entries.Count == 0)
        {
            return;
        }

        int pickleIndex = entries.FindIndex(e => e.Name.EndsWith("/data.pkl", StringComparison.Ordinal));
        switch (m.Kind)
        {
            case MutationKind.StorageResize:
                var storages = Enumerable.Range(0, entries.Count).Where(i => entries[i].Name.Contains("/data/", StringComparison.Ordinal)).ToList();
                if (storages.Count > 0)
                {
                    int index = storages[(int)(m.A % storages.Count)];
                    byte[] data = entries[index].Data;
                    byte[] resized = m.C % 2 == 0
                        ? data[..(int)(m.B % (data.Length + 1))]
                        : [.. data, .. new byte[1 + (m.B % 64)]];
                    entries[index] = (entries[index].Name, resized);
                }

                return;
            case MutationKind.EntryDrop:
                entries.RemoveAt((int)(m.A % entries.Count));
                return;
            case MutationKind.EntryDuplicate:
                var original = entries[(int)(m.A % entries.Count)];
                entries.Insert((int)(m.B % (entries.Count + 1)), (original.Name, m.C % 2 == 0 ? original.Data : []));
                return;
            case MutationKind.EntryRename:
                int renamed = (int)(m.A % entries.Count);
                entries[renamed] = (Rename(entries[renamed].Name, m.B), entries[renamed].Data);
                return;
            case MutationKind.VersionText:
                int version = entries.FindIndex(e => e.Name.EndsWith("/version", StringComparison.Ordinal));
                if (version >= 0)
                {
                    entries[version] = (entries[version].Name, Encoding.UTF8.GetBytes(VersionTexts[m.B % VersionTexts.Length]));
                }

                return;
            case MutationKind.EntrySwap:
                int first = (int)(m.A % entries.Count);
                int second = (int)(m.B % entries.Count);
                (entries[first], entries[second]) = (entries[second], entries[first]);
                return;
            case MutationKind.RezipAsZip64:
                zip64 = true;
                return;
        }

        if (pickleIndex >= 0)
        {
            entries[pickleIndex] = (entries[pickleIndex].Name, MutatePickle(entries[pickleIndex].Data, m));
        }
    }

    private static string Rename(string name, uint choice)
    {
        int slash = name.IndexOf('/');
        string folder = slash > 0 ? name[..slash] : "archive";
        string record = slash > 0 ? name[(slash + 1)..] : name;
        return (choice % 6) switch
        {
            0 => record,
            1 => "other/" + record,
            2 => name + "/",
            3 => folder + "/data/" + (choice / 6 % 4),
            4 => folder + "/" + record.ToUpperInvariant(),
            _ => folder + "/data/../" + record,
        };
    }

    private static byte[] MutatePickle(byte[] pickle, Mutation m)
    {
        if (pickle.Length == 0)
        {
            return pickle;
        }

        var operations = PickleScanner.Scan(pickle);
        var bytes = new List<byte>(pickle);
        switch (m.Kind)
        {
            case MutationKind.PickleSetByte:
                bytes[(int)(m.A % pickle.Length)] = m.C % 4 == 0 ? (byte)m.B : InterestingBytes[m.B % InterestingBytes.Length];
                break;
            case MutationKind.PickleReplaceOpcode when operations.Count > 0:
                var replaced = operations[(int)(m.A % operations.Count)];
                bytes[replaced.Offset] = PickleScanner.KnownOpcodes[m.B % PickleScanner.KnownOpcodes.Length];
                break;
            case MutationKind.PickleSetArgument:
                var withArgument = operations.Where(o => o.Kind != PickleArgumentKind.None).ToList();
                if (withArgument.Count > 0)
                {
                    SetArgument(bytes, withArgument[(int)(m.A % withArgument.Count)], m.B, m.C);
                }

                break;
            case MutationKind.PickleChangeMemoIndex:
                var memo = operations.Where(o => PickleScanner.IsMemoAccess(o.Opcode)).ToList();
                if (memo.Count > 0)
                {
                    ChangeMemoIndex(bytes, memo, memo[(int)(m.A % memo.Count)], m.B);
                }

                break;
            case MutationKind.PickleDeleteOperations when operations.Count > 0:
                var (deleteStart, deleteLength) = OperationRange(operations, m.A, 1 + (int)(m.B % 4));
                bytes.RemoveRange(deleteStart, deleteLength);
                break;
            case MutationKind.PickleDuplicateOperations when operations.Count > 0:
                var (copyStart, copyLength) = OperationRange(operations, m.A, 1 + (int)(m.B % 8));
                int repeats = m.C % 4 == 0 ? 1 + (int)(m.C / 4 % 256) : 1;
                var chunk = bytes.GetRange(copyStart, copyLength);
                for (int r = 0; r < repeats; r++)
                {
                    bytes.InsertRange(copyStart + copyLength, chunk);
                }

                break;
            case MutationKind.PickleInsertOpcode:
                bytes.InsertRange(Boundary(operations, pickle.Length, m.A), MinimalOperation(PickleScanner.KnownOpcodes[m.B % PickleScanner.KnownOpcodes.Length], m.C));
                break;
            case MutationKind.PickleInsertGlobal:
                bytes.InsertRange(Boundary(operations, pickle.Length, m.A), GlobalReference(Globals[m.B % Globals.Length], m.C));
                break;
            case MutationKind.PickleSwapOperations when operations.Count > 1:
                var left = operations[(int)(m.A % operations.Count)];
                var right = operations[(int)(m.B % operations.Count)];
                if (left.Offset > right.Offset)
                {
                    (left, right) = (right, left);
                }

                if (left.Offset != right.Offset)
                {
                    var rightBytes = bytes.GetRange(right.Offset, right.Length);
                    var leftBytes = bytes.GetRange(left.Offset, left.Length);
                    bytes.RemoveRange(right.Offset, right.Length);
                    bytes.InsertRange(right.Offset, leftBytes);
                    bytes.RemoveRange(left.Offset, left.Length);
                    bytes.InsertRange(left.Offset, rightBytes);
                }

                break;
            case MutationKind.PickleTruncate:
                bytes.RemoveRange((int)(m.A % pickle.Length), pickle.Length - (int)(m.A % pickle.Length));
                break;
            case MutationKind.PickleRepeatMemoCall:
                // Calls a memoized global on a memoized tuple, such as _rebuild_tensor_v2 on the arguments of a tensor.
                var callables = MemoPutsAfter(operations, PickleOpcodes.Global, PickleOpcodes.StackGlobal);
                var tuples = MemoPutsAfter(operations, PickleOpcodes.Tuple, PickleOpcodes.Tuple1, PickleOpcodes.Tuple2, PickleOpcodes.Tuple3, PickleOpcodes.EmptyTuple);
                if (callables.Count > 0 && tuples.Count > 0)
                {
                    int callable = callables[(int)(m.B % callables.Count)];
                    int arguments = tuples[(int)(m.C % tuples.Count)];
                    byte[] call =
                    [
                        .. MemoGet(ReadWord(bytes, operations[callable].Offset + 1, operations[callable].PrefixSize)),
                        .. MemoGet(ReadWord(bytes, operations[arguments].Offset + 1, operations[arguments].PrefixSize)),
                        PickleOpcodes.Reduce,
                        PickleOpcodes.Pop,
                    ];
                    int firstAllowed = Math.Max(callable, arguments) + 1;
                    int insertAt = firstAllowed + (int)(m.A % Math.Max(operations.Count - firstAllowed, 1));
                    int calls = 1 + (int)(m.A / 65536 % 4096);
                    bytes.InsertRange(insertAt < operations.Count ? operations[insertAt].Offset : pickle.Length, Repeat(call, calls));
                }

                break;
            case MutationKind.PickleNestShared:
                byte[] nest = [PickleOpcodes.Dup, m.C % 2 == 0 ? PickleOpcodes.Tuple2 : PickleOpcodes.Tuple1];
                int levels = 1 + (int)(m.B % 64);
                var after = operations.Count == 0 ? null : (PickleOperation?)operations[(int)(m.A % operations.Count)];
                int at = after is { } operation ? operation.Offset + operation.Length : 0;
                bytes.InsertRange(Math.Min(at, bytes.Count), Repeat(nest, levels));
                break;
        }

        return [.. bytes];
    }

    private static void SetArgument(List<byte> bytes, PickleOperation operation, uint choice, uint variant)
    {
        int argumentStart = operation.Offset + 1;
        switch (operation.Kind)
        {
            case PickleArgumentKind.Fixed or PickleArgumentKind.LengthPrefixed:
                ulong original = ReadWord(bytes, argumentStart, operation.PrefixSize);
                WriteWord(bytes, argumentStart, operation.PrefixSize, Interesting(operation.PrefixSize, choice, original));
                break;
            case PickleArgumentKind.Line:
                ReplaceLine(bytes, argumentStart, InterestingLines[choice % InterestingLines.Length]);
                break;
            case PickleArgumentKind.TwoLines:
                var (module, name) = Globals[choice % Globals.Length];
                int firstLineEnd = bytes.IndexOf((byte)'\n', argumentStart);
                if (variant % 2 == 0)
                {
                    ReplaceLine(bytes, argumentStart, module);
                }
                else
                {
                    ReplaceLine(bytes, firstLineEnd + 1, name);
                }

                break;
        }
    }

    private static void ChangeMemoIndex(List<byte> bytes, List<PickleOperation> memo, PickleOperation target, uint choice)
    {
        // Half of the time, point it to the index of another memo access, so that GET returns a real but wrong object.
        var source = memo[(int)(choice / 2 % memo.Count)];
        ulong other = source.Kind == PickleArgumentKind.Fixed ? ReadWord(bytes, source.Offset + 1, source.PrefixSize) : 0;
        switch (target.Kind)
        {
            case PickleArgumentKind.Fixed:
                ulong original = ReadWord(bytes, target.Offset + 1, target.PrefixSize);
                ulong index = choice % 2 == 0 ? other : Interesting(target.PrefixSize, choice / 2, original);
                WriteWord(bytes, target.Offset + 1, target.PrefixSize, index);
                break;
            case PickleArgumentKind.Line:
                ReplaceLine(bytes, target.Offset + 1, (choice % 2 == 0 ? other : choice / 2 % 300).ToString(System.Globalization.CultureInfo.InvariantCulture));
                break;
        }
    }

    private static (int Start, int Length) OperationRange(List<PickleOperation> operations, uint start, int count)
    {
        int first = (int)(start % operations.Count);
        int last = Math.Min(operations.Count - 1, first + count - 1);
        return (operations[first].Offset, operations[last].Offset + operations[last].Length - operations[first].Offset);
    }

    private static int Boundary(List<PickleOperation> operations, int pickleLength, uint choice) =>
        operations.Count == 0 ? (int)(choice % (pickleLength + 1)) : operations[(int)(choice % operations.Count)].Offset;

    private static byte[] MinimalOperation(byte opcode, uint choice)
    {
        var (kind, size) = PickleScanner.ArgumentOf(opcode);
        return kind switch
        {
            PickleArgumentKind.Fixed => [opcode, .. WordBytes(size, Interesting(size, choice, 0))],
            PickleArgumentKind.Line => [opcode, .. Encoding.ASCII.GetBytes(InterestingLines[choice % InterestingLines.Length] + "\n")],
            PickleArgumentKind.TwoLines => [opcode, .. Encoding.ASCII.GetBytes(Globals[choice % Globals.Length].Module + "\n" + Globals[choice % Globals.Length].Name + "\n")],
            PickleArgumentKind.LengthPrefixed => [opcode, .. WordBytes(size, choice % 3), .. Enumerable.Repeat((byte)'a', (int)(choice % 3))],
            _ => [opcode],
        };
    }

    /// <summary>Returns the indices of the BINPUT and LONG_BINPUT operations that directly follow one of <paramref name="opcodes"/>.</summary>
    private static List<int> MemoPutsAfter(List<PickleOperation> operations, params byte[] opcodes) =>
        Enumerable.Range(1, Math.Max(operations.Count - 1, 0))
            .Where(i => operations[i].Opcode is PickleOpcodes.BinPut or PickleOpcodes.LongBinPut && opcodes.Contains(operations[i - 1].Opcode))
            .ToList();

    /// <summary>Returns <paramref name="count"/> copies of <paramref name="bytes"/> as one array, which List.InsertRange inserts in one move.</summary>
    private static byte[] Repeat(byte[] bytes, int count)
    {
        var repeated = new byte[bytes.Length * count];
        for (int i = 0; i < count; i++)
        {
            bytes.CopyTo(repeated, i * bytes.Length);
        }

        return repeated;
    }

    private static byte[] MemoGet(ulong index) =>
        index <= byte.MaxValue ? [PickleOpcodes.BinGet, (byte)index] : [PickleOpcodes.LongBinGet, .. WordBytes(4, index)];

    private static byte[] GlobalReference((string Module, string Name) global, uint form)
    {
        byte[] module = Encoding.UTF8.GetBytes(global.Module);
        byte[] name = Encoding.UTF8.GetBytes(global.Name);
        return (form % 3) switch
        {
            0 => [PickleOpcodes.Global, .. module, (byte)'\n', .. name, (byte)'\n'],
            1 =>
            [
                PickleOpcodes.ShortBinUnicode, (byte)module.Length, .. module,
                PickleOpcodes.ShortBinUnicode, (byte)name.Length, .. name,
                PickleOpcodes.StackGlobal,
            ],
            _ => [PickleOpcodes.Mark, (byte)'i', .. module, (byte)'\n', .. name, (byte)'\n'],
        };
    }

    private static void ApplyToFile(List<byte> bytes, Mutation m)
    {
        switch (m.Kind)
        {
            case MutationKind.Extend:
                int count = 1 + (int)(m.A % 4096);
                byte fill = InterestingBytes[m.B % InterestingBytes.Length];
                bytes.AddRange(Enumerable.Repeat(fill, count));
                return;
            case MutationKind.ZipField:
                SetZipField(bytes, m);
                return;
        }

        if (bytes.Count == 0)
        {
            return;
        }

        int position = Position(bytes.Count, m.A, m.C);
        switch (m.Kind)
        {
            case MutationKind.FlipBit:
                bytes[position] ^= (byte)(1 << (int)(m.B % 8));
                break;
            case MutationKind.SetByte:
                bytes[position] = InterestingBytes[m.B % InterestingBytes.Length];
                break;
            case MutationKind.SetWord:
                int width = (m.B % 3) switch { 0 => 2, 1 => 4, _ => 8 };
                if (position + width <= bytes.Count)
                {
                    WriteWord(bytes, position, width, Interesting(width, m.B / 3, ReadWord(bytes, position, width)));
                }

                break;
            case MutationKind.Truncate:
                bytes.RemoveRange(position, bytes.Count - position);
                break;
            case MutationKind.DuplicateChunk:
                int length = Math.Min(1 + (int)(m.B % 256), bytes.Count - position);
                var chunk = bytes.GetRange(position, length);
                bytes.InsertRange(Position(bytes.Count, m.B / 256, m.C / 2), chunk);
                break;
            case MutationKind.DeleteChunk:
                bytes.RemoveRange(position, Math.Min(1 + (int)(m.B % 256), bytes.Count - position));
                break;
        }
    }

    private static void SetZipField(List<byte> bytes, Mutation m)
    {
        var records = new List<(int Offset, uint Signature)>();
        for (int at = 0; at + 4 <= bytes.Count; at++)
        {
            if (bytes[at] == (byte)'P' && bytes[at + 1] == (byte)'K')
            {
                uint signature = (uint)ReadWord(bytes, at, 4);
                if (ZipFields.ContainsKey(signature))
                {
                    records.Add((at, signature));
                }
            }
        }

        if (records.Count == 0)
        {
            return;
        }

        var (offset, recordSignature) = records[(int)(m.A % records.Count)];
        var fields = ZipFields[recordSignature];
        var (fieldOffset, size) = fields[m.B % fields.Length];
        if (offset + fieldOffset + size <= bytes.Count)
        {
            ulong original = ReadWord(bytes, offset + fieldOffset, size);
            WriteWord(bytes, offset + fieldOffset, size, Interesting(size, m.C, original));
        }
    }

    /// <summary>Picks a position anywhere, or, when <paramref name="region"/> is odd, among the last bytes where the zip directory is.</summary>
    private static int Position(int length, uint choice, uint region)
    {
        if (region % 2 == 1 && length > TailRegion)
        {
            return length - TailRegion + (int)(choice % TailRegion);
        }

        return (int)(choice % length);
    }

    /// <summary>Returns an interesting value for a field of <paramref name="width"/> bytes: an edge value or the original moved a little.</summary>
    private static ulong Interesting(int width, uint choice, ulong original)
    {
        ulong mask = width >= 8 ? ulong.MaxValue : (1UL << (8 * width)) - 1;
        ulong[] edges = [.. InterestingWords.Select(w => w & mask), mask >> 1, (mask >> 1) + 1];
        long[] deltas = [1, -1, 8, -8, 64, -64, 4096];
        uint pick = choice % (uint)(edges.Length + deltas.Length);
        return pick < edges.Length ? edges[pick] : (original + (ulong)deltas[pick - edges.Length]) & mask;
    }

    private static ulong ReadWord(List<byte> bytes, int offset, int width)
    {
        ulong value = 0;
        for (int i = width - 1; i >= 0; i--)
        {
            value = (value << 8) | bytes[offset + i];
        }

        return value;
    }

    private static void WriteWord(List<byte> bytes, int offset, int width, ulong value)
    {
        for (int i = 0; i < width; i++)
        {
            bytes[offset + i] = (byte)(value >> (8 * i));
        }
    }

    private static byte[] WordBytes(int width, ulong value)
    {
        var word = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(word, value);
        return word[..width];
    }

    private static void ReplaceLine(List<byte> bytes, int start, string text)
    {
        int end = bytes.IndexOf((byte)'\n', start);
        if (end < 0)
        {
            return;
        }

        bytes.RemoveRange(start, end - start);
        bytes.InsertRange(start, Encoding.UTF8.GetBytes(text));
    }

    private static byte[] Zip(List<(string Name, byte[] Data)> entries, bool zip64)
    {
        using var stream = new MemoryStream();
        var zip = new ZipStoreWriter(stream, zip64);
        foreach (var (name, data) in entries)
        {
            zip.AddEntry(name, data);
        }

        zip.Finish();
        return stream.ToArray();
    }
}
