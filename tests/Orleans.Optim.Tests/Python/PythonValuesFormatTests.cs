using System.Diagnostics;
using Orleans.Optim.Python;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Tests.Python;

/// <summary>
/// <see cref="PythonValues.Format"/> and <see cref="PythonValues.TypeName"/> print small values as Python does and
/// cut large or deeply shared values at <see cref="PythonValues.MaxTextLength"/> characters in bounded time.
/// </summary>
public sealed class PythonValuesFormatTests
{
    public static TheoryData<object?, string> SmallValues => new()
    {
        { null, "None" },
        { true, "True" },
        { 3L, "3" },
        { 1e-8, "1e-08" },
        { "lr", "'lr'" },
        { new object?[] { 0.9, 0.999 }, "(0.9, 0.999)" },
        { new object?[] { 1L }, "(1,)" },
        { new object?[] { }, "()" },
        { new List<object?> { 0L, null }, "[0, None]" },
        { new OrderedDictionary<object, object?> { ["a"] = new List<object?> { true } }, "{'a': [True]}" },
        { PythonCounter.FromElements([30L, 30L]), "Counter({30: 2})" },
    };

    [Theory]
    [MemberData(nameof(SmallValues))]
    public void FormatPrintsSmallValueAsPython(object? value, string expected)
    {
        Assert.Equal(expected, PythonValues.Format(value));
    }

    [Fact]
    public void TypeNamePrintsSmallValues()
    {
        Assert.Equal("tuple[float,int]", PythonValues.TypeName(new object?[] { 0.9, 2L }));
        Assert.Equal("list[str]", PythonValues.TypeName(new List<object?> { "a", 1L }));
        Assert.Equal("list", PythonValues.TypeName(new List<object?>()));
        Assert.Equal("Tensor[float32,[2]]", PythonValues.TypeName(Tensor.FromFloats([1f, 2f], 2)));
    }

    [Fact]
    public void FormatCutsLongString()
    {
        string text = PythonValues.Format(new string('x', 5000));

        Assert.Equal(PythonValues.MaxTextLength + 3, text.Length);
        Assert.StartsWith("'xxx", text);
        Assert.EndsWith("x...", text);
    }

    [Fact]
    public void FormatCutsSharedNestingQuickly()
    {
        object? value = SharedNesting(levels: 80);
        var clock = Stopwatch.StartNew();

        string text = PythonValues.Format(value);

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"Formatting took {clock.Elapsed}.");
        Assert.Equal(PythonValues.MaxTextLength + 3, text.Length);
        Assert.StartsWith("((((", text);
        Assert.EndsWith("...", text);
    }

    [Fact]
    public void TypeNameCutsSharedNestingQuickly()
    {
        object? value = SharedNesting(levels: 80);
        var clock = Stopwatch.StartNew();

        string text = PythonValues.TypeName(value);

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"Naming the type took {clock.Elapsed}.");
        Assert.Equal(PythonValues.MaxTextLength + 3, text.Length);
        Assert.StartsWith("tuple[tuple[", text);
    }

    [Fact]
    public void FormatCutsLongList()
    {
        var list = Enumerable.Range(0, 1_000_000).Select(i => (object?)(long)i).ToList();

        string text = PythonValues.Format(list);

        Assert.Equal(PythonValues.MaxTextLength + 3, text.Length);
        Assert.StartsWith("[0, 1, 2, ", text);
    }

    /// <summary>Returns a tuple that contains the level below twice at each of <paramref name="levels"/> levels, 2**levels values when expanded.</summary>
    private static object? SharedNesting(int levels)
    {
        object? value = null;
        for (int level = 0; level < levels; level++)
        {
            value = new object?[] { value, value };
        }

        return value;
    }
}
