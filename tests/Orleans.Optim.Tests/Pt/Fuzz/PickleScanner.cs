using System.Buffers.Binary;
using Orleans.Optim.Formats.Pt;

namespace Orleans.Optim.Tests.Pt.Fuzz;

/// <summary>How the argument of a pickle opcode is encoded.</summary>
internal enum PickleArgumentKind
{
    /// <summary>No argument.</summary>
    None,

    /// <summary>A fixed number of bytes, such as the 4 bytes of BININT.</summary>
    Fixed,

    /// <summary>One line of text ending in a newline, such as the text of INT.</summary>
    Line,

    /// <summary>Two lines of text, the module and the name of GLOBAL or INST.</summary>
    TwoLines,

    /// <summary>A little-endian length of <see cref="PickleOperation.PrefixSize"/> bytes and then that many bytes.</summary>
    LengthPrefixed,
}

/// <summary>One opcode of a pickle with the location of its argument.</summary>
/// <param name="Offset">Offset of the opcode byte.</param>
/// <param name="Length">Length of the opcode and its argument in bytes.</param>
/// <param name="Opcode">The opcode byte.</param>
/// <param name="Kind">How the argument is encoded.</param>
/// <param name="PrefixSize">Size of the fixed argument, or of the length prefix, in bytes.</param>
internal readonly record struct PickleOperation(int Offset, int Length, byte Opcode, PickleArgumentKind Kind, int PrefixSize);

/// <summary>
/// Splits a pickle into opcodes without running it, so that the fuzzer can mutate whole opcodes and their
/// arguments. Covers every opcode of protocols 0 to 5, including those the reader rejects.
/// </summary>
internal static class PickleScanner
{
    /// <summary>Every opcode byte that pickle protocols 0 to 5 define.</summary>
    public static readonly byte[] KnownOpcodes = BuildKnownOpcodes();

    /// <summary>
    /// Returns the opcodes from the start of <paramref name="pickle"/> up to the first STOP, unknown opcode or
    /// truncated argument, whichever comes first.
    /// </summary>
    public static List<PickleOperation> Scan(ReadOnlySpan<byte> pickle)
    {
        var operations = new List<PickleOperation>();
        int at = 0;
        while (at < pickle.Length)
        {
            byte opcode = pickle[at];
            var (kind, prefixSize) = ArgumentOf(opcode);
            int length;
            switch (kind)
            {
                case null:
                    return operations;
                case PickleArgumentKind.None:
                    length = 1;
                    break;
                case PickleArgumentKind.Fixed:
                    length = 1 + prefixSize;
                    break;
                case PickleArgumentKind.Line:
                    int lineEnd = pickle[(at + 1)..].IndexOf((byte)'\n');
                    length = lineEnd < 0 ? -1 : 1 + lineEnd + 1;
                    break;
                case PickleArgumentKind.TwoLines:
                    int first = pickle[(at + 1)..].IndexOf((byte)'\n');
                    int second = first < 0 ? -1 : pickle[(at + 1 + first + 1)..].IndexOf((byte)'\n');
                    length = second < 0 ? -1 : 1 + first + 1 + second + 1;
                    break;
                default:
                    if (at + 1 + prefixSize > pickle.Length)
                    {
                        return operations;
                    }

                    ulong dataLength = ReadLength(pickle.Slice(at + 1, prefixSize));
                    length = dataLength > (ulong)(pickle.Length - at - 1 - prefixSize) ? -1 : 1 + prefixSize + (int)dataLength;
                    break;
            }

            if (length < 0 || at + length > pickle.Length)
            {
                return operations;
            }

            operations.Add(new PickleOperation(at, length, opcode, kind.Value, prefixSize));
            at += length;
            if (opcode == PickleOpcodes.Stop)
            {
                return operations;
            }
        }

        return operations;
    }

    /// <summary>Returns how the argument of <paramref name="opcode"/> is encoded, or null for an unknown opcode.</summary>
    public static (PickleArgumentKind? Kind, int PrefixSize) ArgumentOf(byte opcode) => opcode switch
    {
        PickleOpcodes.Mark or PickleOpcodes.Stop or PickleOpcodes.Pop or PickleOpcodes.PopMark or PickleOpcodes.Dup
            or PickleOpcodes.None or PickleOpcodes.NewTrue or PickleOpcodes.NewFalse or PickleOpcodes.EmptyDict
            or PickleOpcodes.Dict or PickleOpcodes.SetItem or PickleOpcodes.SetItems or PickleOpcodes.EmptyList
            or PickleOpcodes.List or PickleOpcodes.Append or PickleOpcodes.Appends or PickleOpcodes.EmptyTuple
            or PickleOpcodes.Tuple or PickleOpcodes.Tuple1 or PickleOpcodes.Tuple2 or PickleOpcodes.Tuple3
            or PickleOpcodes.Memoize or PickleOpcodes.Reduce or PickleOpcodes.Build or PickleOpcodes.NewObj
            or PickleOpcodes.StackGlobal or PickleOpcodes.BinPersId
            or (byte)'o' or 0x8f or 0x90 or 0x91 or 0x92 or 0x97 or 0x98 => (PickleArgumentKind.None, 0),
        PickleOpcodes.Proto or PickleOpcodes.BinInt1 or PickleOpcodes.BinPut or PickleOpcodes.BinGet or 0x82 => (PickleArgumentKind.Fixed, 1),
        PickleOpcodes.BinInt2 or 0x83 => (PickleArgumentKind.Fixed, 2),
        PickleOpcodes.BinInt or PickleOpcodes.LongBinPut or PickleOpcodes.LongBinGet or 0x84 => (PickleArgumentKind.Fixed, 4),
        PickleOpcodes.BinFloat or PickleOpcodes.Frame => (PickleArgumentKind.Fixed, 8),
        PickleOpcodes.Int or PickleOpcodes.Long or PickleOpcodes.Float or PickleOpcodes.String or PickleOpcodes.Unicode
            or PickleOpcodes.Get or PickleOpcodes.Put or PickleOpcodes.PersId => (PickleArgumentKind.Line, 0),
        PickleOpcodes.Global or (byte)'i' => (PickleArgumentKind.TwoLines, 0),
        PickleOpcodes.ShortBinUnicode or PickleOpcodes.ShortBinString or PickleOpcodes.Long1 or (byte)'C' => (PickleArgumentKind.LengthPrefixed, 1),
        PickleOpcodes.BinUnicode or PickleOpcodes.BinString or PickleOpcodes.Long4 or (byte)'B' => (PickleArgumentKind.LengthPrefixed, 4),
        PickleOpcodes.BinUnicode8 or 0x8e or 0x96 => (PickleArgumentKind.LengthPrefixed, 8),
        _ => (null, 0),
    };

    /// <summary>Whether <paramref name="opcode"/> stores into or reads from the memo by index.</summary>
    public static bool IsMemoAccess(byte opcode) =>
        opcode is PickleOpcodes.BinGet or PickleOpcodes.BinPut or PickleOpcodes.LongBinGet or PickleOpcodes.LongBinPut
            or PickleOpcodes.Get or PickleOpcodes.Put;

    private static ulong ReadLength(ReadOnlySpan<byte> prefix) => prefix.Length switch
    {
        1 => prefix[0],
        4 => BinaryPrimitives.ReadUInt32LittleEndian(prefix),
        _ => BinaryPrimitives.ReadUInt64LittleEndian(prefix),
    };

    private static byte[] BuildKnownOpcodes()
    {
        var known = new List<byte>();
        for (int value = 0; value < 256; value++)
        {
            if (ArgumentOf((byte)value).Kind is not null)
            {
                known.Add((byte)value);
            }
        }

        return [.. known];
    }
}
