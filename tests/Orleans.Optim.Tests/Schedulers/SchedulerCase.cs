using System.Globalization;
using System.Text.Json;
using Orleans.Optim.Python;
using Orleans.Optim.Schedulers;
using Orleans.Optim.Tests.Infrastructure;
using Xunit.Sdk;

namespace Orleans.Optim.Tests.Schedulers;

/// <summary>
/// One recorded torch 1.13 scheduler run of <c>tests/fixtures/schedulers</c>, written by
/// <c>generate_schedulers.py</c>, with helpers that build the same scheduler here and compare values.
/// </summary>
internal sealed class SchedulerCase
{
    private static readonly Lazy<string[]> CaseNames = new(() =>
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "cases.json")));
        return document.RootElement.GetProperty("cases").EnumerateArray().Select(name => name.GetString()!).ToArray();
    });

    private SchedulerCase(string name, JsonElement document)
    {
        Name = name;
        Document = document;
    }

    /// <summary>The fixture folder.</summary>
    public static string Folder => Path.Combine(RepositoryPaths.Root, "tests", "fixtures", "schedulers");

    /// <summary>The case names that <c>cases.json</c> lists.</summary>
    public static IReadOnlyList<string> Names => CaseNames.Value;

    public string Name { get; }

    public JsonElement Document { get; }

    public int MiddleStep => Document.GetProperty("middle_step").GetInt32();

    public int NumSteps => Document.GetProperty("num_steps").GetInt32();

    /// <summary>'momentum' or 'betas' when the case records them at each step, otherwise null.</summary>
    public string? MomentumKey => Document.GetProperty("momentum_key").GetString();

    /// <summary>The recorded values after the constructor (index 0) and after each step.</summary>
    public JsonElement Steps => Document.GetProperty("steps");

    public static SchedulerCase Load(string name)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, name + ".json")));
        return new SchedulerCase(name, document.RootElement.Clone());
    }

    /// <summary>Returns the path of the .pt that torch.save wrote at <paramref name="label"/> ('middle' or 'end').</summary>
    public string PtPath(string label) => Path.Combine(Folder, $"{Name}_{label}.pt");

    /// <summary>Returns the state dict that torch returned at <paramref name="label"/>, as a Python value.</summary>
    public object? StateDict(string label) => TypedJson.ToPython(Document.GetProperty(label).GetProperty("state_dict"));

    /// <summary>Returns fresh param groups as the optimizer had them before the scheduler was created, and the optimizer's default keys.</summary>
    public OptimizerParamGroups NewOptimizer()
    {
        var optimizer = Document.GetProperty("optimizer");
        var groups = optimizer.GetProperty("initial_param_groups").EnumerateArray().Select(TypedJson.ToGroup).ToList();
        var defaults = (OrderedDictionary<object, object?>)TypedJson.ToPython(optimizer.GetProperty("defaults"))!;
        return new OptimizerParamGroups(groups, defaults.Keys.Cast<string>());
    }

    /// <summary>Creates the case's scheduler through the factory, children first for SequentialLR.</summary>
    public LRScheduler NewScheduler(OptimizerParamGroups optimizer) => Build(Document.GetProperty("scheduler"), optimizer);

    /// <summary>Replaces each group's items with those recorded at <paramref name="label"/>, as <c>optimizer.load_state_dict</c> does.</summary>
    public void LoadParamGroups(OptimizerParamGroups optimizer, string label)
    {
        var saved = Document.GetProperty(label).GetProperty("param_groups").EnumerateArray().Select(TypedJson.ToGroup).ToList();
        Assert.Equal(saved.Count, optimizer.ParamGroups.Count);
        for (int i = 0; i < saved.Count; i++)
        {
            optimizer.ParamGroups[i].Clear();
            foreach (var (key, value) in saved[i])
            {
                optimizer.ParamGroups[i].Add(key, value);
            }
        }
    }

    /// <summary>Asserts that the groups equal those torch had, recorded under <paramref name="property"/> (or under it in <paramref name="label"/>).</summary>
    public void AssertParamGroups(OptimizerParamGroups optimizer, string property, string? label = null)
    {
        var element = label is null ? Document.GetProperty(property) : Document.GetProperty(label).GetProperty(property);
        var expected = element.EnumerateArray().Select(TypedJson.ToPython).ToList<object?>();
        var actual = optimizer.ParamGroups
            .Select(group => (object?)new OrderedDictionary<object, object?>(group.Select(pair => new KeyValuePair<object, object?>(pair.Key, pair.Value))))
            .ToList();
        PythonAssert.Equal(expected, actual, $"{Name}: param_groups{(label is null ? string.Empty : " at " + label)}");
    }

    /// <summary>Asserts that the groups' values equal those torch recorded at step <paramref name="step"/>, by repr, so that int and float and every bit count.</summary>
    public void AssertStep(OptimizerParamGroups optimizer, int step)
    {
        var recorded = Steps[step];
        AssertValues(recorded.GetProperty("lr"), optimizer, "lr", step);
        if (MomentumKey is { } key)
        {
            AssertValues(recorded.GetProperty(key), optimizer, key, step);
        }
    }

    /// <summary>Asserts one recorded step printed by the generator's 'continue' command.</summary>
    public void AssertRecordedStep(JsonElement expected, JsonElement actual, int step)
    {
        foreach (var property in expected.EnumerateObject())
        {
            Assert.True(
                property.Value.GetRawText() == actual.GetProperty(property.Name).GetRawText(),
                $"{Name} step {step} {property.Name}: expected {property.Value.GetRawText()}, torch continued with {actual.GetProperty(property.Name).GetRawText()}.");
        }
    }

    private void AssertValues(JsonElement expected, OptimizerParamGroups optimizer, string key, int step)
    {
        Assert.Equal(expected.GetArrayLength(), optimizer.ParamGroups.Count);
        for (int i = 0; i < optimizer.ParamGroups.Count; i++)
        {
            var expectedValue = expected[i];
            object? actual = optimizer.ParamGroups[i][key];
            if (expectedValue.ValueKind == JsonValueKind.Array)
            {
                // betas: JSON has a list where Python has a tuple.
                if (actual is not object?[] tuple)
                {
                    throw new XunitException($"{Name} step {step} param_groups[{i}]['{key}']: expected a tuple, found {PythonValues.TypeName(actual)}.");
                }

                string expectedText = "(" + string.Join(", ", expectedValue.EnumerateArray().Select(item => item.GetRawText())) + ")";
                Check(expectedText, PythonValues.Format(tuple), step, i, key);
            }
            else
            {
                Check(expectedValue.GetRawText(), PythonValues.Format(actual), step, i, key);
            }
        }
    }

    private void Check(string expected, string actual, int step, int group, string key)
    {
        if (expected != actual)
        {
            throw new XunitException($"{Name} step {step} param_groups[{group}]['{key}']: torch has {expected}, this library {actual}.");
        }
    }

    private static LRScheduler Build(JsonElement spec, OptimizerParamGroups optimizer)
    {
        string name = spec.GetProperty("name").GetString()!;
        var kwargs = ((OrderedDictionary<object, object?>)TypedJson.ToPython(spec.GetProperty("kwargs"))!)
            .Select(pair => new KeyValuePair<string, object?>((string)pair.Key, pair.Value))
            .ToList();
        if (spec.TryGetProperty("children", out var children))
        {
            var schedulers = children.EnumerateArray().Select(child => (object?)Build(child, optimizer)).ToList();
            kwargs.Add(new("schedulers", schedulers));
        }

        return LRSchedulers.Create(name, optimizer, kwargs);
    }
}

/// <summary>Converts the typed JSON of <c>generate_schedulers.py</c>'s <c>describe()</c> into Python values.</summary>
internal static class TypedJson
{
    public static object? ToPython(JsonElement element)
    {
        string type = element.GetProperty("type").GetString()!;
        return type switch
        {
            "None" => null,
            "bool" => element.GetProperty("value").GetBoolean(),
            "int" => element.GetProperty("value").GetInt64(),
            "float" => ToDouble(element.GetProperty("value")),
            "str" => element.GetProperty("value").GetString(),
            "tuple" => Items(element).ToArray(),
            "list" => Items(element).ToList(),
            "dict" => Fill(new OrderedDictionary<object, object?>(), element),
            "OrderedDict" => Fill(new PythonOrderedDict(), element),
            "Counter" => Fill(new PythonCounter(), element),
            "method" => ToMethod(element),
            _ => throw new XunitException($"Unknown type '{type}' in a scheduler fixture."),
        };
    }

    /// <summary>Converts a described dict with string keys into a param group.</summary>
    public static OrderedDictionary<string, object?> ToGroup(JsonElement element)
    {
        var dict = (OrderedDictionary<object, object?>)ToPython(element)!;
        return new OrderedDictionary<string, object?>(dict.Select(pair => new KeyValuePair<string, object?>((string)pair.Key, pair.Value)));
    }

    private static double ToDouble(JsonElement value) =>
        value.ValueKind == JsonValueKind.String
            ? value.GetString() switch
            {
                "inf" => double.PositiveInfinity,
                "-inf" => double.NegativeInfinity,
                _ => double.NaN,
            }
            : double.Parse(value.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture);

    private static IEnumerable<object?> Items(JsonElement element) => element.GetProperty("items").EnumerateArray().Select(ToPython);

    private static OrderedDictionary<object, object?> Fill(OrderedDictionary<object, object?> dict, JsonElement element)
    {
        foreach (var pair in element.GetProperty("items").EnumerateArray())
        {
            dict.Add(ToPython(pair[0])!, ToPython(pair[1]));
        }

        return dict;
    }

    private static PythonBoundMethod ToMethod(JsonElement element)
    {
        string qualified = element.GetProperty("class").GetString()!;
        int dot = qualified.LastIndexOf('.');
        return PythonBoundMethod.TryGet(qualified[..dot], qualified[(dot + 1)..], element.GetProperty("name").GetString()!, out var method)
            ? method
            : throw new XunitException($"Unknown method {qualified}.{element.GetProperty("name").GetString()} in a scheduler fixture.");
    }
}

/// <summary>Asserts that two Python value trees are equal with their types, key order and float bits, naming the path of the first difference.</summary>
internal static class PythonAssert
{
    public static void Equal(object? expected, object? actual, string path)
    {
        if (expected is null || actual is null || expected.GetType() != actual.GetType())
        {
            Check(expected is null && actual is null, path, expected, actual);
            return;
        }

        switch (expected)
        {
            case double e:
                Check(BitConverter.DoubleToInt64Bits(e) == BitConverter.DoubleToInt64Bits((double)actual), path, expected, actual);
                break;
            case object?[] e:
                EqualSequence(e, (object?[])actual, path);
                break;
            case List<object?> e:
                EqualSequence(e, (List<object?>)actual, path);
                break;
            case OrderedDictionary<object, object?> e:
                var a = (OrderedDictionary<object, object?>)actual;
                Check(e.Count == a.Count && e.Keys.Zip(a.Keys).All(keys => PythonValues.StrictEquals(keys.First, keys.Second)), path + ".keys()", e.Keys.ToList(), a.Keys.ToList());
                foreach (var (key, value) in e)
                {
                    Equal(value, a[key], $"{path}[{PythonValues.Format(key)}]");
                }

                break;
            default:
                Check(PythonValues.StrictEquals(expected, actual), path, expected, actual);
                break;
        }
    }

    private static void EqualSequence(IReadOnlyList<object?> expected, IReadOnlyList<object?> actual, string path)
    {
        Check(expected.Count == actual.Count, path + " length", expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Equal(expected[i], actual[i], $"{path}[{i}]");
        }
    }

    private static void Check(bool condition, string path, object? expected, object? actual)
    {
        if (!condition)
        {
            throw new XunitException(
                $"{path}: expected {PythonValues.TypeName(expected)} {Format(expected)}, found {PythonValues.TypeName(actual)} {Format(actual)}.");
        }
    }

    private static string Format(object? value) => value is List<object> keys
        ? "[" + string.Join(", ", keys.Select(PythonValues.Format)) + "]"
        : PythonValues.Format(value);
}
