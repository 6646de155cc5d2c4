using System.Globalization;
using System.Text.Json;
using Orleans.Optim.Python;
using Orleans.Optim.Tensors;
using Xunit;
using Xunit.Sdk;

namespace Orleans.Optim.Tests.Pt;

/// <summary>
/// Assertions that compare a .NET value tree with the JSON that <c>pt_oracle.py</c> prints for what torch loaded:
/// Python types, values bit for bit, key order, OrderedDict metadata and which tensors are one object.
/// </summary>
internal sealed class TorchValueAssert
{
    private readonly Dictionary<int, Tensor> _tensorsByIdentity = [];
    private readonly Dictionary<Tensor, int> _identityByTensor = new(ReferenceEqualityComparer.Instance);

    /// <summary>Asserts that <paramref name="actual"/> matches the described value, naming the path of the first difference.</summary>
    public static void Matches(JsonElement expected, object? actual) => new TorchValueAssert().Match(expected, actual, "root");

    /// <summary>
    /// Asserts that every tensor in the description is a plain contiguous CPU <c>torch.Tensor</c> with offset 0 and
    /// no gradient, as every tensor that the writer produces must load.
    /// </summary>
    public static void AllTensorsPlain(JsonElement described)
    {
        foreach (var tensor in Tensors(described))
        {
            Assert.Equal("Tensor", tensor.GetProperty("type").GetString());
            Assert.True(tensor.GetProperty("contiguous").GetBoolean(), "A written tensor loads as non-contiguous.");
            Assert.Equal(0, tensor.GetProperty("storage_offset").GetInt64());
            Assert.False(tensor.GetProperty("requires_grad").GetBoolean(), "A written tensor loads with requires_grad=True.");
            Assert.Equal("cpu", tensor.GetProperty("device").GetString());
        }
    }

    /// <summary>Returns every tensor description in a described value, in order.</summary>
    public static IEnumerable<JsonElement> Tensors(JsonElement described)
    {
        string type = described.GetProperty("type").GetString()!;
        if (type is "Tensor" or "Parameter")
        {
            yield return described;
            yield break;
        }

        if (described.TryGetProperty("items", out var items))
        {
            foreach (var item in items.EnumerateArray())
            {
                var parts = item.ValueKind == JsonValueKind.Array ? item.EnumerateArray().ToArray() : [item];
                foreach (var part in parts)
                {
                    foreach (var tensor in Tensors(part))
                    {
                        yield return tensor;
                    }
                }
            }
        }

        if (described.TryGetProperty("metadata", out var metadata))
        {
            foreach (var tensor in Tensors(metadata))
            {
                yield return tensor;
            }
        }
    }

    private void Match(JsonElement expected, object? actual, string path)
    {
        string type = expected.GetProperty("type").GetString()!;
        switch (type)
        {
            case "None":
                Check(actual is null, path, $"expected None, found {Describe(actual)}");
                break;
            case "bool":
                Check(actual is bool b && b == expected.GetProperty("value").GetBoolean(), path, $"expected bool {expected.GetProperty("value")}, found {Describe(actual)}");
                break;
            case "int":
                long number = long.Parse(expected.GetProperty("value").GetString()!, CultureInfo.InvariantCulture);
                Check(actual is long l && l == number, path, $"expected int {number}, found {Describe(actual)}");
                break;
            case "float":
                long bits = BitConverter.ToInt64(Convert.FromHexString(expected.GetProperty("bits").GetString()!).Reverse().ToArray());
                Check(actual is double d && BitConverter.DoubleToInt64Bits(d) == bits, path, $"expected float {BitConverter.Int64BitsToDouble(bits)}, found {Describe(actual)}");
                break;
            case "str":
                Check(actual is string s && s == expected.GetProperty("value").GetString(), path, $"expected str {expected.GetProperty("value")}, found {Describe(actual)}");
                break;
            case "tuple":
                Check(actual is object?[], path, $"expected tuple, found {Describe(actual)}");
                MatchSequence(expected.GetProperty("items"), (object?[])actual!, path);
                break;
            case "list":
                Check(actual?.GetType() == typeof(List<object?>), path, $"expected list, found {Describe(actual)}");
                MatchSequence(expected.GetProperty("items"), (List<object?>)actual!, path);
                break;
            case "dict":
                Check(actual?.GetType() == typeof(OrderedDictionary<object, object?>), path, $"expected dict, found {Describe(actual)}");
                MatchItems(expected.GetProperty("items"), (OrderedDictionary<object, object?>)actual!, path);
                break;
            case "OrderedDict":
                Check(actual is PythonOrderedDict, path, $"expected OrderedDict, found {Describe(actual)}");
                var orderedDict = (PythonOrderedDict)actual!;
                MatchItems(expected.GetProperty("items"), orderedDict, path);
                if (expected.TryGetProperty("metadata", out var metadata))
                {
                    Match(metadata, orderedDict.Metadata, path + "._metadata");
                }
                else
                {
                    Check(orderedDict.Metadata is null, path, "expected no _metadata attribute");
                }

                break;
            case "Tensor" or "Parameter":
                Check(actual is Tensor, path, $"expected tensor, found {Describe(actual)}");
                MatchTensor(expected, (Tensor)actual!, path);
                break;
            default:
                throw new XunitException($"{path}: unknown described type '{type}'.");
        }
    }

    private void MatchSequence(JsonElement items, IReadOnlyList<object?> actual, string path)
    {
        Check(items.GetArrayLength() == actual.Count, path, $"expected {items.GetArrayLength()} items, found {actual.Count}");
        int i = 0;
        foreach (var item in items.EnumerateArray())
        {
            Match(item, actual[i], $"{path}[{i}]");
            i++;
        }
    }

    private void MatchItems(JsonElement items, OrderedDictionary<object, object?> actual, string path)
    {
        Check(items.GetArrayLength() == actual.Count, path, $"expected {items.GetArrayLength()} keys, found {actual.Count}");
        int i = 0;
        foreach (var pair in items.EnumerateArray())
        {
            var (key, value) = actual.GetAt(i);
            Match(pair[0], key, $"{path}.keys[{i}]");
            Match(pair[1], value, $"{path}[{PythonValues.Format(key)}]");
            i++;
        }
    }

    private void MatchTensor(JsonElement expected, Tensor actual, string path)
    {
        string dtype = expected.GetProperty("dtype").GetString()!;
        Check(actual.DType.TorchName() == dtype, path, $"expected dtype {dtype}, found {actual.DType.TorchName()}");
        long[] shape = expected.GetProperty("shape").EnumerateArray().Select(size => size.GetInt64()).ToArray();
        Check(actual.HasShape(shape), path, $"expected shape {Tensor.FormatShape(shape)}, found {Tensor.FormatShape(actual.Shape)}");
        string data = expected.GetProperty("data").GetString()!;
        Check(Convert.ToHexString(actual.Data).Equals(data, StringComparison.OrdinalIgnoreCase), path, $"expected bytes {data}, found {Convert.ToHexString(actual.Data).ToLowerInvariant()}");

        int identity = expected.GetProperty("identity").GetInt32();
        if (_tensorsByIdentity.TryGetValue(identity, out var known))
        {
            Check(ReferenceEquals(known, actual), path, $"expected the same tensor object as tensor {identity}, found a different instance");
        }
        else
        {
            Check(!_identityByTensor.ContainsKey(actual), path, $"expected a new tensor object, found the instance of tensor {(_identityByTensor.TryGetValue(actual, out int other) ? other : -1)}");
            _tensorsByIdentity.Add(identity, actual);
            _identityByTensor.Add(actual, identity);
        }
    }

    private static void Check(bool condition, string path, string message)
    {
        if (!condition)
        {
            throw new XunitException($"{path}: {message}.");
        }
    }

    private static string Describe(object? value) =>
        value is null ? "None" : $"{value.GetType().Name} {PythonValues.Format(value)}";
}
