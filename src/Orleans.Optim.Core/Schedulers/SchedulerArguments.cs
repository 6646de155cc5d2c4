using Orleans.Optim.Python;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// A scheduler's constructor arguments after binding, by torch's argument names, as Python values, with typed
/// reads whose errors name the scheduler and the argument.
/// </summary>
internal sealed class SchedulerArguments
{
    private readonly IReadOnlyDictionary<string, object?> _values;

    public SchedulerArguments(string schedulerName, IReadOnlyDictionary<string, object?> values)
    {
        SchedulerName = schedulerName;
        _values = values;
    }

    public string SchedulerName { get; }

    /// <summary>Creates the arguments of a typed constructor, where every argument has a value.</summary>
    public static SchedulerArguments Of(string schedulerName, params (string Name, object? Value)[] values) =>
        new(schedulerName, values.ToDictionary(pair => pair.Name, pair => pair.Value, StringComparer.Ordinal));

    /// <summary>Returns the value as given, with a C# <see cref="int"/> widened to a Python int.</summary>
    public object? Raw(string name)
    {
        if (!_values.TryGetValue(name, out object? value))
        {
            throw new InvalidOperationException($"Unreachable: {SchedulerName} reads the unknown argument '{name}'.");
        }

        return value is int number ? (long)number : value;
    }

    /// <summary>Reads a finite int or float, returned as <see cref="long"/> or <see cref="double"/>.</summary>
    public object Number(string name)
    {
        object? value = Raw(name);
        return SchedulerValues.AsFiniteNumber(value)
            ?? throw Invalid(name, $"expected a finite int or float, found {SchedulerValues.Describe(value)}");
    }

    /// <summary>Reads a finite int or float that is not zero, because torch divides by it.</summary>
    public object NonZeroNumber(string name, string divisionDescription)
    {
        object number = Number(name);
        if (PythonArithmetic.NumberEquals(number, 0L))
        {
            throw Invalid(name, $"expected a nonzero number, found {PythonValues.Format(number)}. Torch 1.13 accepts 0 but {divisionDescription}");
        }

        return number;
    }

    /// <summary>Reads a Python int.</summary>
    public long Int(string name)
    {
        object? value = Raw(name);
        return value as long? ?? throw Invalid(name, $"expected an int, found {SchedulerValues.Describe(value)}");
    }

    /// <summary>Reads a Python bool.</summary>
    public bool Flag(string name)
    {
        object? value = Raw(name);
        return value as bool? ?? throw Invalid(name, $"expected True or False, found {SchedulerValues.Describe(value)}");
    }

    /// <summary>Creates an error for the argument <paramref name="name"/>.</summary>
    public InvalidSchedulerArgumentException Invalid(string name, string reason) =>
        new($"Invalid {name} for {SchedulerName}: {reason}.", name);

    /// <summary>Creates an error with torch's message, followed by what to do.</summary>
    public InvalidSchedulerArgumentException TorchError(string name, string torchMessage, string fix) =>
        new($"{SchedulerName}: {torchMessage}. {fix}.", name);
}
