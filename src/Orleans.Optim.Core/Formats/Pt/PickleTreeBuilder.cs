using System.Text;
using Orleans.Optim.Python;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// Converts a Python value tree of <see cref="PythonValues"/> into the tree that <see cref="TorchPickler"/>
/// pickles: plain values, fresh tuples, lists and dicts, and node objects for tensors and OrderedDicts.
/// </summary>
/// <remarks>
/// Validation happens here, before any byte is written. A source object that occurs several times maps to one
/// converted object, so the pickle memo keeps the sharing and a shared subtree costs its size once.
/// NOTE: a tree that shares containers so much that it expands to more than PtReaderOptions.MaxExpandedValues
/// values is written, but PtReader rejects it unless that limit is raised.
/// </remarks>
internal sealed class PickleTreeBuilder
{
    /// <summary>Maximum number of containers on a path from the root, the same default as <see cref="PtReaderOptions.MaxNestingDepth"/>.</summary>
    /// <remarks>Razorvine's pickler stops at 200 nested saves, and a tensor adds 4 of them.</remarks>
    public const int MaxDepth = 100;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly Dictionary<object, object> _converted = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<object> _inProgress = new(ReferenceEqualityComparer.Instance);

    /// <summary>Whether the tree contains a <see cref="StreamedTensor"/>.</summary>
    public bool HasStreamedTensors { get; private set; }

    /// <summary>Converts <paramref name="root"/> and its whole tree.</summary>
    /// <exception cref="ArgumentException">A value has no Python equivalent, a container contains itself, the tree is too deep, or two keys collide.</exception>
    public object Build(OrderedDictionary<object, object?> root) => Convert(root, null, 1)!;

    private object? Convert(object? value, ValuePath? path, int depth)
    {
        switch (value)
        {
            case string text:
                CheckString(text, path);
                return text;
            case null or bool or long or double:
                return value;
            case int number:
                return (long)number;
            case Tensor tensor:
                return Shared(tensor, () => new TensorNode(tensor.DType, tensor.Shape, tensor.Data.LongLength, tensor, null));
            case StreamedTensor streamed:
                HasStreamedTensors = true;
                return Shared(streamed, () => new TensorNode(streamed.DType, streamed.Shape, streamed.ByteCount, null, streamed));
            case PythonBoundMethod method:
                return Shared(method, () => new BoundMethodNode(method));
            case object?[] or List<object?> or OrderedDictionary<object, object?>:
                return ConvertContainer(value, path, depth);
            default:
                throw new ArgumentException(
                    $"The value at {ValuePath.Format(path)} has type {value.GetType().FullName}, which has no Python equivalent in a .pt file. " +
                    "Use null, bool, long, double, string, object?[] (tuple), List<object?>, OrderedDictionary<object, object?> (dict), " +
                    "PythonOrderedDict, PythonCounter, PythonBoundMethod, Tensor or StreamedTensor.",
                    nameof(value));
        }
    }

    private object ConvertContainer(object container, ValuePath? path, int depth)
    {
        if (_converted.TryGetValue(container, out object? done))
        {
            return done;
        }

        if (_inProgress.Contains(container))
        {
            throw new ArgumentException(
                $"The container at {ValuePath.Format(path)} contains itself, which a .pt file cannot express. Break the cycle before writing.",
                nameof(container));
        }

        if (depth > MaxDepth)
        {
            throw new ArgumentException(
                $"The value at {ValuePath.Format(path)} is nested more than {MaxDepth} containers deep, which the .pt writer does not support. " +
                "Flatten the state before writing.",
                nameof(container));
        }

        _inProgress.Add(container);
        object result = container switch
        {
            object?[] tuple => ConvertTuple(tuple, path, depth),
            List<object?> list => list.Select((item, i) => Convert(item, new ValuePath(path, i), depth + 1)).ToList(),
            PythonOrderedDict orderedDict => new OrderedDictNode(
                ConvertItems(orderedDict, path, depth),
                orderedDict.Metadata is null ? null : Convert(orderedDict.Metadata, new ValuePath(path, "_metadata", isAttribute: true), depth + 1)),
            PythonCounter counter => new CounterNode(ConvertItems(counter, path, depth)),
            OrderedDictionary<object, object?> dict when dict.GetType() == typeof(OrderedDictionary<object, object?>) => ConvertItems(dict, path, depth),
            OrderedDictionary<object, object?> dict => throw new ArgumentException(
                $"The dict at {ValuePath.Format(path)} has type {dict.GetType().FullName}, which has no Python equivalent in a .pt file. " +
                "Use OrderedDictionary<object, object?>, PythonOrderedDict or PythonCounter.",
                nameof(container)),
            _ => throw new InvalidOperationException("Unreachable: the caller checks the container type."),
        };
        _inProgress.Remove(container);
        _converted[container] = result;
        return result;
    }

    private object?[] ConvertTuple(object?[] tuple, ValuePath? path, int depth)
    {
        var result = new object?[tuple.Length];
        for (int i = 0; i < tuple.Length; i++)
        {
            result[i] = Convert(tuple[i], new ValuePath(path, i), depth + 1);
        }

        return result;
    }

    private OrderedDictionary<object, object?> ConvertItems(OrderedDictionary<object, object?> dict, ValuePath? path, int depth)
    {
        var result = new OrderedDictionary<object, object?>(dict.Count);
        foreach (var (key, value) in dict)
        {
            var keyPath = new ValuePath(path, key);
            object convertedKey = ConvertKey(key, keyPath, depth);
            if (!result.TryAdd(convertedKey, null))
            {
                throw new ArgumentException(
                    $"The dict at {ValuePath.Format(path)} has two keys equal to {PythonValues.Format(convertedKey)} once int keys become Python ints. " +
                    "Use distinct keys.",
                    nameof(dict));
            }

            result[convertedKey] = Convert(value, keyPath, depth + 1);
        }

        return result;
    }

    private object ConvertKey(object key, ValuePath path, int depth) => key switch
    {
        string text => CheckString(text, path),
        bool or long or double => key,
        int number => (long)number,
        object?[] tuple => ConvertContainer(tuple, path, depth + 1),
        _ => throw new ArgumentException(
            $"The dict key at {ValuePath.Format(path)} has type {key.GetType().FullName}, but keys must be str, int, float, bool or tuple. Use one of those.",
            nameof(key)),
    };

    /// <summary>Returns <paramref name="text"/> after checking that it encodes to UTF-8 without loss, as pickle strings must.</summary>
    private static string CheckString(string text, ValuePath? path)
    {
        if (text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') >= 0)
        {
            try
            {
                StrictUtf8.GetByteCount(text);
            }
            catch (EncoderFallbackException ex)
            {
                throw new ArgumentException(
                    $"The string at {ValuePath.Format(path)} contains an unpaired UTF-16 surrogate, which UTF-8 cannot encode. Remove or replace it.",
                    nameof(text),
                    ex);
            }
        }

        return text;
    }

    private T Shared<T>(object source, Func<T> create)
        where T : class
    {
        if (_converted.TryGetValue(source, out object? node))
        {
            return (T)node;
        }

        var created = create();
        _converted[source] = created;
        return created;
    }

    /// <summary>Location of a value in the tree, for messages, such as <c>root['state'][0]['exp_avg']</c>.</summary>
    private sealed class ValuePath(ValuePath? parent, object step, bool isAttribute = false)
    {
        private readonly ValuePath? _parent = parent;
        private readonly object _step = step;
        private readonly bool _isAttribute = isAttribute;

        public static string Format(ValuePath? path)
        {
            var steps = new List<string>();
            for (var at = path; at is not null; at = at._parent)
            {
                steps.Add(at._isAttribute ? "." + at._step : "[" + PythonValues.Format(at._step) + "]");
            }

            steps.Reverse();
            return "root" + string.Concat(steps);
        }
    }
}

/// <summary>A tensor to pickle as <c>torch._utils._rebuild_tensor_v2</c> over its own storage.</summary>
/// <remarks>A class with reference equality, because the pickler memoizes by <see cref="object.Equals(object)"/>.</remarks>
internal sealed class TensorNode(DType dtype, long[] shape, long byteCount, Tensor? tensor, StreamedTensor? streamed)
{
    /// <summary>Element type.</summary>
    public DType DType { get; } = dtype;

    /// <summary>Sizes of each dimension.</summary>
    public long[] Shape { get; } = shape;

    /// <summary>Size of the storage record in bytes.</summary>
    public long ByteCount { get; } = byteCount;

    /// <summary>The in-memory tensor, or null for a streamed one.</summary>
    public Tensor? Tensor { get; } = tensor;

    /// <summary>The streamed tensor, or null for an in-memory one.</summary>
    public StreamedTensor? Streamed { get; } = streamed;

    /// <summary>Storage key, assigned when the pickler first reaches the tensor.</summary>
    public string? StorageKey { get; set; }

    /// <summary>Returns the tensor for messages.</summary>
    public override string ToString() => Streamed?.ToString() ?? Tensor!.ToString();
}

/// <summary>A <c>collections.OrderedDict</c> to pickle with its items and optional <c>_metadata</c> attribute.</summary>
/// <remarks>A class with reference equality, because the pickler memoizes by <see cref="object.Equals(object)"/>.</remarks>
internal sealed class OrderedDictNode(OrderedDictionary<object, object?> items, object? metadata)
{
    /// <summary>Converted items in order.</summary>
    public OrderedDictionary<object, object?> Items { get; } = items;

    /// <summary>Converted <c>_metadata</c> attribute, or null.</summary>
    public object? Metadata { get; } = metadata;
}

/// <summary>A <c>collections.Counter</c> to pickle as <c>Counter(dict)</c>, as Python's pickle does.</summary>
/// <remarks>A class with reference equality, because the pickler memoizes by <see cref="object.Equals(object)"/>.</remarks>
internal sealed class CounterNode(OrderedDictionary<object, object?> items)
{
    /// <summary>Converted items in order.</summary>
    public OrderedDictionary<object, object?> Items { get; } = items;
}

/// <summary>A bound method to pickle as <c>getattr(cls.__new__(cls), name)</c>.</summary>
/// <remarks>A class with reference equality, because the pickler memoizes by <see cref="object.Equals(object)"/>.</remarks>
internal sealed class BoundMethodNode(PythonBoundMethod method)
{
    /// <summary>The method.</summary>
    public PythonBoundMethod Method { get; } = method;
}
