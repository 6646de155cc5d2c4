using System.Globalization;
using System.Text;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Python;

/// <summary>
/// The .NET representation of Python values in state dicts and <c>.pt</c> files, and helpers to name and print them.
/// </summary>
/// <remarks>
/// <list type="table">
/// <listheader><term>Python</term><description>.NET</description></listheader>
/// <item><term><c>None</c></term><description><see langword="null"/></description></item>
/// <item><term><c>bool</c></term><description><see cref="bool"/></description></item>
/// <item><term><c>int</c></term><description><see cref="long"/> (values outside 64 bits are rejected)</description></item>
/// <item><term><c>float</c></term><description><see cref="double"/></description></item>
/// <item><term><c>str</c></term><description><see cref="string"/></description></item>
/// <item><term><c>tuple</c></term><description><c>object?[]</c></description></item>
/// <item><term><c>list</c></term><description><see cref="List{T}"/> of <c>object?</c></description></item>
/// <item><term><c>dict</c></term><description><see cref="OrderedDictionary{TKey, TValue}"/> of <c>object</c> to <c>object?</c>, in insertion order</description></item>
/// <item><term><c>collections.OrderedDict</c></term><description><see cref="PythonOrderedDict"/></description></item>
/// <item><term><c>collections.Counter</c></term><description><see cref="PythonCounter"/></description></item>
/// <item><term>a bound method such as <c>OneCycleLR</c>'s <c>anneal_func</c></term><description><see cref="PythonBoundMethod"/></description></item>
/// <item><term><c>torch.Tensor</c></term><description><see cref="Tensor"/></description></item>
/// </list>
/// </remarks>
public static class PythonValues
{
    /// <summary>
    /// Maximum length of the text that <see cref="TypeName"/> and <see cref="Format"/> return, not counting the
    /// <c>...</c> that replaces the rest. A value read from a file can be large or share one container at every level,
    /// so the text of its whole tree could be too long to build.
    /// </summary>
    public const int MaxTextLength = 1000;

    /// <summary>
    /// Returns the Python type of a value in the notation of the reference fixtures:
    /// <c>int</c>, <c>float</c>, <c>bool</c>, <c>NoneType</c>, <c>str</c>, <c>tuple[float,float]</c>,
    /// <c>list[int]</c>, <c>dict</c> or <c>Tensor[float32,[3, 5]]</c>. Text past <see cref="MaxTextLength"/>
    /// characters is cut and ends in <c>...</c>.
    /// </summary>
    public static string TypeName(object? value)
    {
        var text = new StringBuilder();
        AppendTypeName(text, value);
        return Cut(text);
    }

    /// <summary>
    /// Formats a value roughly as Python's <c>repr</c> does, for messages. Text past <see cref="MaxTextLength"/>
    /// characters is cut and ends in <c>...</c>.
    /// </summary>
    public static string Format(object? value)
    {
        var text = new StringBuilder();
        AppendFormatted(text, value);
        return Cut(text);
    }

    /// <summary>Formats a double as Python's <c>repr(float)</c>: shortest round trip, <c>1e-08</c>, <c>1.0</c>, <c>inf</c>, <c>nan</c>.</summary>
    public static string FormatFloat(double value)
    {
        if (double.IsNaN(value))
        {
            return "nan";
        }

        if (double.IsInfinity(value))
        {
            return value > 0 ? "inf" : "-inf";
        }

        string text = value.ToString("R", CultureInfo.InvariantCulture);
        int exponentAt = text.IndexOf('E');
        if (exponentAt < 0)
        {
            return text.Contains('.') ? text : text + ".0";
        }

        // .NET prints 1E-08 where Python prints 1e-08, and 1E+16 where Python prints 1e+16.
        string mantissa = text[..exponentAt];
        int exponent = int.Parse(text[(exponentAt + 1)..], CultureInfo.InvariantCulture);
        var builder = new StringBuilder(mantissa).Append('e').Append(exponent < 0 ? '-' : '+');
        builder.Append(Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture));
        return builder.ToString();
    }

    /// <summary>Returns whether a value is a Python number (<c>int</c> or <c>float</c>, not <c>bool</c>).</summary>
    public static bool IsNumber(object? value) => value is long or int or double;

    /// <summary>Converts a Python <c>int</c> or <c>float</c> to a double, as Python's <c>float(x)</c>.</summary>
    /// <exception cref="InvalidCastException">The value is not a number.</exception>
    public static double ToDouble(object? value) => value switch
    {
        double d => d,
        long l => l,
        int i => i,
        _ => throw new InvalidCastException($"Expected a Python int or float, found {TypeName(value)} {Format(value)}."),
    };

    /// <summary>Returns whether two values are equal with their Python types, comparing floats and tensors bit for bit.</summary>
    public static bool StrictEquals(object? left, object? right)
    {
        switch (left, right)
        {
            case (null, null):
                return true;
            case (bool a, bool b):
                return a == b;
            case (long a, long b):
                return a == b;
            case (int a, int b):
                return a == b;
            case (long a, int b):
                return a == b;
            case (int a, long b):
                return a == b;
            case (double a, double b):
                return BitConverter.DoubleToInt64Bits(a) == BitConverter.DoubleToInt64Bits(b);
            case (string a, string b):
                return a == b;
            case (object?[] a, object?[] b):
                return a.Length == b.Length && a.Zip(b).All(pair => StrictEquals(pair.First, pair.Second));
            case (List<object?> a, List<object?> b):
                return a.Count == b.Count && a.Zip(b).All(pair => StrictEquals(pair.First, pair.Second));
            case (OrderedDictionary<object, object?> a, OrderedDictionary<object, object?> b):
                return a.Count == b.Count
                    && a.GetType() == b.GetType()
                    && a.Zip(b).All(pair => StrictEquals(pair.First.Key, pair.Second.Key) && StrictEquals(pair.First.Value, pair.Second.Value));
            case (Tensor a, Tensor b):
                return a.BitwiseEquals(b);
            case (PythonBoundMethod a, PythonBoundMethod b):
                return ReferenceEquals(a, b);
            default:
                return false;
        }
    }

    private static string Cut(StringBuilder text) =>
        text.Length > MaxTextLength ? text.ToString(0, MaxTextLength) + "..." : text.ToString();

    /// <summary>Appends the type name, and stops descending once the text is past <see cref="MaxTextLength"/>, so the work stays bounded.</summary>
    private static void AppendTypeName(StringBuilder text, object? value)
    {
        if (text.Length > MaxTextLength)
        {
            return;
        }

        switch (value)
        {
            case object?[] tuple:
                text.Append("tuple[");
                for (int i = 0; i < tuple.Length && text.Length <= MaxTextLength; i++)
                {
                    text.Append(i > 0 ? "," : string.Empty);
                    AppendTypeName(text, tuple[i]);
                }

                text.Append(']');
                break;
            case List<object?> list:
                text.Append(list.Count == 0 ? "list" : "list[");
                if (list.Count > 0)
                {
                    AppendTypeName(text, list[0]);
                    text.Append(']');
                }

                break;
            default:
                text.Append(value switch
                {
                    null => "NoneType",
                    bool => "bool",
                    long or int => "int",
                    double => "float",
                    string => "str",
                    PythonOrderedDict => "OrderedDict",
                    PythonCounter => "Counter",
                    OrderedDictionary<object, object?> => "dict",
                    Tensor tensor => $"Tensor[{tensor.DType.TorchName()},{Tensor.FormatShape(tensor.Shape)}]",
                    PythonBoundMethod => "method",
                    _ => value.GetType().Name,
                });
                break;
        }
    }

    /// <summary>Appends the repr, and stops descending once the text is past <see cref="MaxTextLength"/>, so the work stays bounded.</summary>
    private static void AppendFormatted(StringBuilder text, object? value)
    {
        if (text.Length > MaxTextLength)
        {
            return;
        }

        switch (value)
        {
            case string s:
                text.Append('\'').Append(s, 0, Math.Min(s.Length, MaxTextLength + 1 - text.Length)).Append('\'');
                break;
            case object?[] tuple:
                text.Append('(');
                AppendItems(text, tuple);
                text.Append(tuple.Length == 1 ? ",)" : ")");
                break;
            case List<object?> list:
                text.Append('[');
                AppendItems(text, list);
                text.Append(']');
                break;
            case PythonCounter counter:
                text.Append("Counter({");
                AppendPairs(text, counter);
                text.Append("})");
                break;
            case OrderedDictionary<object, object?> dict:
                text.Append('{');
                AppendPairs(text, dict);
                text.Append('}');
                break;
            default:
                text.Append(value switch
                {
                    null => "None",
                    bool b => b ? "True" : "False",
                    long or int => Convert.ToString(value, CultureInfo.InvariantCulture)!,
                    double d => FormatFloat(d),
                    Tensor tensor => tensor.ToString(),
                    _ => value.ToString() ?? value.GetType().Name,
                });
                break;
        }
    }

    private static void AppendItems(StringBuilder text, IEnumerable<object?> items)
    {
        bool first = true;
        foreach (object? item in items)
        {
            if (text.Length > MaxTextLength)
            {
                return;
            }

            text.Append(first ? string.Empty : ", ");
            AppendFormatted(text, item);
            first = false;
        }
    }

    private static void AppendPairs(StringBuilder text, OrderedDictionary<object, object?> dict)
    {
        bool first = true;
        foreach (var (key, value) in dict)
        {
            if (text.Length > MaxTextLength)
            {
                return;
            }

            text.Append(first ? string.Empty : ", ");
            AppendFormatted(text, key);
            text.Append(": ");
            AppendFormatted(text, value);
            first = false;
        }
    }
}
