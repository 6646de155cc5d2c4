using Orleans.Optim.Python;
using Orleans.Optim.StateDicts;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// Typed reads from a scheduler state dict, after checking that it has exactly the expected keys, with errors that
/// name the scheduler, the path of the value, what was expected and what was found.
/// </summary>
internal sealed class StateDictReader
{
    private readonly OrderedDictionary<object, object?> _dict;
    private readonly string _path;
    private readonly string _schedulerName;

    /// <summary>Checks the keys of <paramref name="dict"/>: every required key, optional keys, and no other key.</summary>
    /// <exception cref="StateDictException">A key is missing, unknown or not a string.</exception>
    public StateDictReader(
        OrderedDictionary<object, object?> dict,
        string path,
        string schedulerName,
        IReadOnlyList<string> requiredKeys,
        IReadOnlyCollection<string> optionalKeys)
    {
        _dict = dict;
        _path = path;
        _schedulerName = schedulerName;

        string expected = string.Join(", ", requiredKeys.Concat(optionalKeys));
        if (dict.GetType() != typeof(OrderedDictionary<object, object?>) && dict is not PythonOrderedDict)
        {
            throw Fail($"{path} is a {PythonValues.TypeName(dict)} instead of a dict");
        }

        foreach (object key in dict.Keys)
        {
            if (key is not string name || (!requiredKeys.Contains(name) && !optionalKeys.Contains(name)))
            {
                throw Fail($"{path} has the key {SchedulerValues.Describe(key)}, which a {schedulerName} state dict does not have (its keys are {expected})");
            }
        }

        foreach (string key in requiredKeys)
        {
            if (!dict.ContainsKey(key))
            {
                throw Fail($"{path} has no key '{key}' (a {schedulerName} state dict has the keys {expected})");
            }
        }
    }

    /// <summary>Path of a value, such as <c>state_dict['_schedulers'][1]['T_max']</c>.</summary>
    public string PathOf(string key) => $"{_path}['{key}']";

    /// <summary>Returns whether the dict has the key.</summary>
    public bool Has(string key) => _dict.ContainsKey(key);

    /// <summary>Returns the value of a key that the constructor checked.</summary>
    public object? Value(string key) => _dict[key];

    /// <summary>Reads a Python int.</summary>
    public long Int(string key) => Value(key) as long? ?? throw Invalid(key, "an int");

    /// <summary>Reads a Python bool.</summary>
    public bool Flag(string key) => Value(key) as bool? ?? throw Invalid(key, "True or False");

    /// <summary>Reads a finite int or float.</summary>
    public object Number(string key) => SchedulerValues.AsFiniteNumber(Value(key)) ?? throw Invalid(key, "a finite int or float");

    /// <summary>Reads a finite number that is not zero, because the scheduler divides by it.</summary>
    public object NonZeroNumber(string key)
    {
        object number = Number(key);
        return PythonArithmetic.NumberEquals(number, 0L) ? throw Invalid(key, "a nonzero number, because the scheduler divides by it") : number;
    }

    /// <summary>Reads a list of <paramref name="count"/> finite numbers, one per param group, as a new list.</summary>
    public List<object?> NumberList(string key, int count)
    {
        if (Value(key) is not List<object?> list || list.Any(item => SchedulerValues.AsFiniteNumber(item) is null))
        {
            throw Invalid(key, "a list of finite ints or floats");
        }

        if (list.Count != count)
        {
            throw Fail(
                $"{PathOf(key)} has {list.Count} values, but the optimizer has {count} param groups. " +
                "Load a state dict saved from a scheduler of an optimizer with the same param groups");
        }

        return list.Select(item => SchedulerValues.AsFiniteNumber(item)).ToList();
    }

    /// <summary>Creates the error for a value of the wrong type or range.</summary>
    public StateDictException Invalid(string key, string expected) =>
        Fail($"{PathOf(key)} is {SchedulerValues.Describe(Value(key))}; expected {expected}");

    /// <summary>Creates an error with the scheduler's name and the advice to load a matching state dict.</summary>
    public StateDictException Fail(string reason) =>
        new($"Invalid {_schedulerName} state dict: {reason}. Load a state dict that {_schedulerName}.state_dict() returned, from torch 1.13 or this library.");
}
