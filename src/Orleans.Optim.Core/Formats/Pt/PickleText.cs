using System.Text;

namespace Orleans.Optim.Formats.Pt;

/// <summary>Decoders for the text arguments of the protocol 0 opcodes STRING and UNICODE.</summary>
internal static class PickleText
{
    /// <summary>
    /// Decodes the argument of STRING: a quoted Python 2 <c>repr</c> with backslash escapes, as CPython's
    /// <c>codecs.escape_decode</c> reads it. Returns null and sets <paramref name="error"/> when it is invalid.
    /// </summary>
    public static byte[]? DecodeEscapedString(ReadOnlySpan<byte> line, out string? error)
    {
        if (line.Length < 2 || line[0] != line[^1] || line[0] is not ((byte)'\'' or (byte)'"'))
        {
            error = "The argument of STRING is not quoted. The file is corrupt.";
            return null;
        }

        var text = line[1..^1];
        var result = new List<byte>(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            byte b = text[i];
            if (b != (byte)'\\' || i + 1 == text.Length)
            {
                result.Add(b);
                continue;
            }

            byte next = text[++i];
            switch (next)
            {
                case (byte)'\n':
                    break;
                case (byte)'\\' or (byte)'\'' or (byte)'"':
                    result.Add(next);
                    break;
                case (byte)'a':
                    result.Add(7);
                    break;
                case (byte)'b':
                    result.Add(8);
                    break;
                case (byte)'f':
                    result.Add(12);
                    break;
                case (byte)'n':
                    result.Add(10);
                    break;
                case (byte)'r':
                    result.Add(13);
                    break;
                case (byte)'t':
                    result.Add(9);
                    break;
                case (byte)'v':
                    result.Add(11);
                    break;
                case >= (byte)'0' and <= (byte)'7':
                    int octal = next - '0';
                    for (int digits = 1; digits < 3 && i + 1 < text.Length && text[i + 1] is >= (byte)'0' and <= (byte)'7'; digits++)
                    {
                        octal = (octal * 8) + (text[++i] - '0');
                    }

                    result.Add((byte)octal);
                    break;
                case (byte)'x':
                    if (i + 2 >= text.Length || !TryParseHex(text.Slice(i + 1, 2), out int hex))
                    {
                        error = "The argument of STRING has an invalid \\x escape. The file is corrupt.";
                        return null;
                    }

                    result.Add((byte)hex);
                    i += 2;
                    break;
                default:
                    // Unknown escapes stay as they are, backslash included.
                    result.Add(b);
                    result.Add(next);
                    break;
            }
        }

        error = null;
        return result.ToArray();
    }

    /// <summary>
    /// Decodes the argument of UNICODE in CPython's <c>raw-unicode-escape</c> codec: bytes are Latin-1 characters,
    /// except that <c>\uXXXX</c> and <c>\UXXXXXXXX</c> after an even number of backslashes are code points.
    /// Returns null and sets <paramref name="error"/> when an escape is invalid.
    /// </summary>
    public static string? DecodeRawUnicodeEscape(ReadOnlySpan<byte> line, out string? error)
    {
        var builder = new StringBuilder(line.Length);
        int i = 0;
        while (i < line.Length)
        {
            if (line[i] != (byte)'\\')
            {
                builder.Append((char)line[i]);
                i++;
                continue;
            }

            int run = 0;
            while (i + run < line.Length && line[i + run] == (byte)'\\')
            {
                run++;
            }

            int after = i + run;
            bool escape = run % 2 == 1 && after < line.Length && line[after] is (byte)'u' or (byte)'U';
            builder.Append('\\', escape ? run - 1 : run);
            i = after;
            if (!escape)
            {
                continue;
            }

            int digits = line[after] == (byte)'u' ? 4 : 8;
            if (after + digits >= line.Length || !TryParseHex(line.Slice(after + 1, digits), out int codePoint)
                || codePoint > 0x10FFFF || codePoint is >= 0xD800 and <= 0xDFFF)
            {
                error = "The argument of UNICODE has an invalid \\u or \\U escape. The file is corrupt.";
                return null;
            }

            builder.Append(char.ConvertFromUtf32(codePoint));
            i = after + 1 + digits;
        }

        error = null;
        return builder.ToString();
    }

    private static bool TryParseHex(ReadOnlySpan<byte> digits, out int value)
    {
        value = 0;
        foreach (byte digit in digits)
        {
            int nibble = digit switch
            {
                >= (byte)'0' and <= (byte)'9' => digit - '0',
                >= (byte)'a' and <= (byte)'f' => digit - 'a' + 10,
                >= (byte)'A' and <= (byte)'F' => digit - 'A' + 10,
                _ => -1,
            };
            if (nibble < 0 || value > 0x0FFFFFFF)
            {
                return false;
            }

            value = (value * 16) + nibble;
        }

        return true;
    }
}
