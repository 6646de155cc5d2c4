using System.Runtime.InteropServices;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Python;

/// <summary>
/// A compact binary encoding of Python values (see <see cref="PythonValues"/>) that keeps their types and key order,
/// used to carry hyperparameters and state through Orleans messages and grain storage.
/// </summary>
/// <remarks>This is an internal exchange format between processes of the same version, not a file format.</remarks>
public static class PythonBinary
{
    private const int MaxDepth = 64;

    private enum Tag : byte
    {
        None,
        False,
        True,
        Int,
        Float,
        Str,
        Tuple,
        List,
        Dict,
        OrderedDict,
        Tensor,
        Counter,
        BoundMethod,

        // torch.optim.optimizer.required: a default without a value, such as SGD's lr.
        Required,
    }

    /// <summary>Encodes a value.</summary>
    /// <exception cref="ArgumentException">The value contains a type that has no Python meaning here.</exception>
    public static byte[] Encode(object? value)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream))
        {
            Write(writer, value, 0);
        }

        return stream.ToArray();
    }

    /// <summary>Decodes a value written by <see cref="Encode"/>.</summary>
    /// <exception cref="FormatException">The bytes are not a valid encoding.</exception>
    public static object? Decode(byte[] data)
    {
        using var reader = new BinaryReader(new MemoryStream(data, writable: false));
        try
        {
            object? value = Read(reader, 0);
            if (reader.BaseStream.Position != data.Length)
            {
                throw new FormatException($"Trailing bytes after an encoded Python value: read {reader.BaseStream.Position} of {data.Length}.");
            }

            return value;
        }
        catch (EndOfStreamException e)
        {
            throw new FormatException("Encoded Python value is truncated.", e);
        }
    }

    /// <summary>Encodes an ordered dict with string keys, such as a param group's options.</summary>
    public static byte[] EncodeOptions(IEnumerable<KeyValuePair<string, object?>> options)
    {
        var dict = new OrderedDictionary<object, object?>();
        foreach (var (key, value) in options)
        {
            dict[key] = value;
        }

        return Encode(dict);
    }

    /// <summary>Decodes what <see cref="EncodeOptions"/> wrote.</summary>
    /// <exception cref="FormatException">The bytes are not an encoded dict with string keys.</exception>
    public static OrderedDictionary<string, object?> DecodeOptions(byte[] data)
    {
        if (Decode(data) is not OrderedDictionary<object, object?> dict)
        {
            throw new FormatException("Expected an encoded dict of options.");
        }

        var options = new OrderedDictionary<string, object?>();
        foreach (var (key, value) in dict)
        {
            options[key as string ?? throw new FormatException("Expected string keys in encoded options.")] = value;
        }

        return options;
    }

    private static void Write(BinaryWriter writer, object? value, int depth)
    {
        if (depth > MaxDepth)
        {
            throw new ArgumentException($"Python value nests deeper than {MaxDepth} levels.", nameof(value));
        }

        switch (value)
        {
            case null:
                writer.Write((byte)Tag.None);
                break;
            case var required when ReferenceEquals(required, Algorithms.OptimizerAlgorithm.Required):
                writer.Write((byte)Tag.Required);
                break;
            case bool b:
                writer.Write((byte)(b ? Tag.True : Tag.False));
                break;
            case long or int:
                writer.Write((byte)Tag.Int);
                writer.Write(Convert.ToInt64(value));
                break;
            case double d:
                writer.Write((byte)Tag.Float);
                writer.Write(d);
                break;
            case string s:
                writer.Write((byte)Tag.Str);
                writer.Write(s);
                break;
            case object?[] tuple:
                writer.Write((byte)Tag.Tuple);
                WriteItems(writer, tuple, depth);
                break;
            case List<object?> list:
                writer.Write((byte)Tag.List);
                WriteItems(writer, list, depth);
                break;
            case OrderedDictionary<object, object?> dict:
                writer.Write((byte)(dict switch
                {
                    PythonOrderedDict => Tag.OrderedDict,
                    PythonCounter => Tag.Counter,
                    _ => Tag.Dict,
                }));
                writer.Write7BitEncodedInt(dict.Count);
                foreach (var (key, item) in dict)
                {
                    Write(writer, key, depth + 1);
                    Write(writer, item, depth + 1);
                }

                break;
            case Tensor tensor:
                writer.Write((byte)Tag.Tensor);
                writer.Write((byte)tensor.DType);
                writer.Write7BitEncodedInt(tensor.Shape.Length);
                foreach (long size in tensor.Shape)
                {
                    writer.Write(size);
                }

                writer.Write7BitEncodedInt(tensor.Data.Length);
                writer.Write(tensor.Data);
                break;
            case PythonBoundMethod method:
                writer.Write((byte)Tag.BoundMethod);
                writer.Write(method.Module);
                writer.Write(method.ClassName);
                writer.Write(method.MethodName);
                break;
            default:
                throw new ArgumentException($"Cannot encode {value.GetType().Name} as a Python value.", nameof(value));
        }
    }

    private static void WriteItems(BinaryWriter writer, IReadOnlyCollection<object?> items, int depth)
    {
        writer.Write7BitEncodedInt(items.Count);
        foreach (object? item in items)
        {
            Write(writer, item, depth + 1);
        }
    }

    private static object? Read(BinaryReader reader, int depth)
    {
        if (depth > MaxDepth)
        {
            throw new FormatException($"Encoded Python value nests deeper than {MaxDepth} levels.");
        }

        var tag = (Tag)reader.ReadByte();
        switch (tag)
        {
            case Tag.None:
                return null;
            case Tag.Required:
                return Algorithms.OptimizerAlgorithm.Required;
            case Tag.False:
                return false;
            case Tag.True:
                return true;
            case Tag.Int:
                return reader.ReadInt64();
            case Tag.Float:
                return reader.ReadDouble();
            case Tag.Str:
                return reader.ReadString();
            case Tag.Tuple:
                return ReadItems(reader, depth).ToArray();
            case Tag.List:
                return ReadItems(reader, depth);
            case Tag.Dict:
            case Tag.OrderedDict:
            case Tag.Counter:
                int count = ReadCount(reader);
                var dict = tag switch
                {
                    Tag.OrderedDict => new PythonOrderedDict(),
                    Tag.Counter => new PythonCounter(),
                    _ => new OrderedDictionary<object, object?>(),
                };
                for (int i = 0; i < count; i++)
                {
                    object key = Read(reader, depth + 1) ?? throw new FormatException("Encoded dict has a None key.");
                    dict[key] = Read(reader, depth + 1);
                }

                return dict;
            case Tag.Tensor:
                var dtype = (DType)reader.ReadByte();
                int rank = ReadCount(reader);
                var shape = new long[rank];
                for (int i = 0; i < rank; i++)
                {
                    shape[i] = reader.ReadInt64();
                }

                int length = ReadCount(reader);
                byte[] data = reader.ReadBytes(length);
                if (data.Length != length)
                {
                    throw new EndOfStreamException();
                }

                return new Tensor(dtype, shape, data);
            case Tag.BoundMethod:
                string module = reader.ReadString();
                string className = reader.ReadString();
                string methodName = reader.ReadString();
                return PythonBoundMethod.TryGet(module, className, methodName, out var method)
                    ? method
                    : throw new FormatException($"Unknown bound method {module}.{className}.{methodName} in an encoded Python value.");
            default:
                throw new FormatException($"Unknown tag {(byte)tag} in an encoded Python value.");
        }
    }

    private static List<object?> ReadItems(BinaryReader reader, int depth)
    {
        int count = ReadCount(reader);
        var items = new List<object?>(Math.Min(count, 1024));
        for (int i = 0; i < count; i++)
        {
            items.Add(Read(reader, depth + 1));
        }

        return items;
    }

    private static int ReadCount(BinaryReader reader)
    {
        int count = reader.Read7BitEncodedInt();
        if (count < 0 || count > reader.BaseStream.Length - reader.BaseStream.Position)
        {
            throw new FormatException($"Invalid count {count} in an encoded Python value.");
        }

        return count;
    }
}
