using Orleans.Optim.Python;

namespace Orleans.Optim.Algorithms;

/// <summary>
/// Reads typed hyperparameters out of one param group, or out of the optimizer's defaults, with errors that name the
/// dictionary and key.
/// </summary>
/// <param name="group">The param group or defaults.</param>
/// <param name="location">How errors name the dictionary, such as <c>param_groups[1]</c>.</param>
/// <param name="checkRanges">Whether <see cref="RejectOutOfRange"/> throws; types are always checked.</param>
internal readonly struct GroupOptionsReader(IReadOnlyDictionary<string, object?> group, string location, bool checkRanges = true)
{
    /// <summary>Creates a reader for param group <paramref name="groupIndex"/>.</summary>
    public GroupOptionsReader(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true)
        : this(group, $"param_groups[{groupIndex}]", checkRanges)
    {
    }

    /// <summary>Creates a reader for torch's <c>optimizer.defaults</c>, the constructor's keyword arguments over the algorithm's defaults.</summary>
    public static GroupOptionsReader ForDefaults(IReadOnlyDictionary<string, object?> defaults) => new(defaults, "defaults");

    public string PathOf(string key) => $"{location}['{key}']";

    /// <summary>Reads a finite Python int or float.</summary>
    public double Number(string key)
    {
        object? value = Get(key);
        if (!PythonValues.IsNumber(value))
        {
            throw Invalid(key, $"expected an int or float, found {PythonValues.TypeName(value)} {PythonValues.Format(value)}");
        }

        double number = PythonValues.ToDouble(value);
        if (!double.IsFinite(number))
        {
            throw Invalid(key, $"expected a finite number, found {PythonValues.Format(value)}");
        }

        return number;
    }

    /// <summary>Reads a Python bool.</summary>
    public bool Flag(string key)
    {
        object? value = Get(key);
        return value as bool? ?? throw Invalid(key, $"expected True or False, found {PythonValues.TypeName(value)} {PythonValues.Format(value)}");
    }

    /// <summary>Reads a pair of finite numbers given as a tuple or list, such as <c>betas</c>.</summary>
    public (double First, double Second) Pair(string key)
    {
        object? value = Get(key);
        IReadOnlyList<object?>? items = value switch
        {
            object?[] tuple => tuple,
            List<object?> list => list,
            _ => null,
        };
        if (items is null || items.Count != 2 || !PythonValues.IsNumber(items[0]) || !PythonValues.IsNumber(items[1]))
        {
            throw Invalid(key, $"expected a tuple of two numbers, found {PythonValues.TypeName(value)} {PythonValues.Format(value)}");
        }

        double first = PythonValues.ToDouble(items[0]);
        double second = PythonValues.ToDouble(items[1]);
        if (!double.IsFinite(first) || !double.IsFinite(second))
        {
            throw Invalid(key, $"expected finite numbers, found {PythonValues.Format(value)}");
        }

        return (first, second);
    }

    /// <summary>Requires a flag to be False (or None where torch allows None), for torch features that have no CPU meaning here.</summary>
    public void RequireOff(string key, string reason)
    {
        if (!group.TryGetValue(key, out object? value) || value is null || value is false)
        {
            return;
        }

        throw Invalid(key, $"{key}={PythonValues.Format(value)} is not supported: {reason}. Set it to False");
    }

    /// <summary>
    /// Requires <c>foreach</c> to be None, True or False. Both settings run the same math here, except in an algorithm
    /// that reads the flag itself, as Adagrad does.
    /// </summary>
    public void RequireForeach()
    {
        if (group.TryGetValue("foreach", out object? value) && value is not (null or bool))
        {
            throw Invalid("foreach", $"expected None, True or False, found {PythonValues.TypeName(value)} {PythonValues.Format(value)}");
        }
    }

    /// <summary>Creates an error for the value at <paramref name="key"/> with torch's wording followed by the path.</summary>
    public InvalidHyperparameterException Invalid(string key, string reason) =>
        new($"Invalid {key} in {PathOf(key)}: {reason}.", PathOf(key));

    /// <summary>Creates an error in torch's words, such as <c>Invalid learning rate: -0.1</c>, followed by the path and the expected range.</summary>
    public InvalidHyperparameterException OutOfRange(string key, string torchMessage, string expected) =>
        new($"{torchMessage} in {PathOf(key)}; expected {expected}.", PathOf(key));

    /// <summary>Throws <see cref="OutOfRange"/>'s error, unless range checks are off.</summary>
    public void RejectOutOfRange(string key, string torchMessage, string expected)
    {
        if (checkRanges)
        {
            throw OutOfRange(key, torchMessage, expected);
        }
    }

    private object? Get(string key)
    {
        if (!group.TryGetValue(key, out object? value))
        {
            throw new InvalidHyperparameterException(
                $"Missing hyperparameter {PathOf(key)}: the group has {string.Join(", ", group.Keys)}. Add '{key}' to the group or to the optimizer's defaults.",
                PathOf(key));
        }

        return value;
    }
}
