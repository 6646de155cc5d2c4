using Orleans.Optim.Python;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Cli.Conformance;

/// <summary>Compares state dicts strictly: key order, Python types, and every value bit for bit.</summary>
public static class StateDictComparison
{
    /// <summary>Returns a description of the first difference, or <see langword="null"/> when the two are identical.</summary>
    /// <param name="expected">The reference.</param>
    /// <param name="actual">The state dict under test.</param>
    /// <param name="ignoredGroupKeys">Group keys that only one side may have, such as <c>param_names</c>.</param>
    public static string? FirstDifference(OptimizerStateDict expected, OptimizerStateDict actual, IReadOnlySet<string>? ignoredGroupKeys = null)
    {
        var expectedIds = expected.State.Keys.ToList();
        var actualIds = actual.State.Keys.ToList();
        if (!expectedIds.SequenceEqual(actualIds))
        {
            return $"state keys: expected [{string.Join(", ", expectedIds)}], found [{string.Join(", ", actualIds)}]";
        }

        foreach (var (id, expectedEntries) in expected.State)
        {
            var actualEntries = actual.State[id];
            if (!expectedEntries.Keys.SequenceEqual(actualEntries.Keys))
            {
                return $"state[{id}] entries: expected [{string.Join(", ", expectedEntries.Keys)}], found [{string.Join(", ", actualEntries.Keys)}]";
            }

            foreach (var (name, expectedValue) in expectedEntries)
            {
                string? difference = ValueDifference(expectedValue, actualEntries[name]);
                if (difference is not null)
                {
                    return $"state[{id}]['{name}']: {difference}";
                }
            }
        }

        if (expected.ParamGroups.Count != actual.ParamGroups.Count)
        {
            return $"param_groups: expected {expected.ParamGroups.Count} groups, found {actual.ParamGroups.Count}";
        }

        for (int g = 0; g < expected.ParamGroups.Count; g++)
        {
            var expectedKeys = expected.ParamGroups[g].Keys.Where(k => ignoredGroupKeys?.Contains(k) != true).ToList();
            var actualKeys = actual.ParamGroups[g].Keys.Where(k => ignoredGroupKeys?.Contains(k) != true).ToList();
            if (!expectedKeys.SequenceEqual(actualKeys))
            {
                return $"param_groups[{g}] keys: expected [{string.Join(", ", expectedKeys)}], found [{string.Join(", ", actualKeys)}]";
            }

            foreach (string key in expectedKeys)
            {
                string? difference = ValueDifference(expected.ParamGroups[g][key], actual.ParamGroups[g][key]);
                if (difference is not null)
                {
                    return $"param_groups[{g}]['{key}']: {difference}";
                }
            }
        }

        return null;
    }

    /// <summary>Returns a description of the first differing element of two float arrays, or <see langword="null"/>.</summary>
    public static string? ArrayDifference(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        if (expected.Length != actual.Length)
        {
            return $"expected {expected.Length} elements, found {actual.Length}";
        }

        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                return $"element {i}: expected {expected[i]:R} (0x{BitConverter.SingleToInt32Bits(expected[i]):X8}), found {actual[i]:R} (0x{BitConverter.SingleToInt32Bits(actual[i]):X8})";
            }
        }

        return null;
    }

    private static string? ValueDifference(object? expected, object? actual)
    {
        string expectedType = PythonValues.TypeName(expected);
        string actualType = PythonValues.TypeName(actual);
        if (expectedType != actualType)
        {
            return $"expected {expectedType} {PythonValues.Format(expected)}, found {actualType} {PythonValues.Format(actual)}";
        }

        if (expected is Tensor expectedTensor && actual is Tensor actualTensor)
        {
            return expectedTensor.DType == DType.Float32
                ? ArrayDifference(expectedTensor.AsFloats(), actualTensor.AsFloats())
                : expectedTensor.BitwiseEquals(actualTensor) ? null : "tensor bytes differ";
        }

        return PythonValues.StrictEquals(expected, actual)
            ? null
            : $"expected {PythonValues.Format(expected)}, found {PythonValues.Format(actual)}";
    }
}
