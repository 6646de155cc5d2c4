namespace Orleans.Optim.Python;

/// <summary>
/// A Python <c>collections.Counter</c>, kept apart from a plain <c>dict</c> because torch's <c>MultiStepLR</c> stores
/// its milestones as one and pickles that type.
/// </summary>
/// <remarks>
/// Items keep insertion order, as in Python. Python's <c>Counter</c> returns 0 for a missing key, but this class
/// is only a container: callers look keys up with <c>TryGetValue</c>.
/// </remarks>
public sealed class PythonCounter : OrderedDictionary<object, object?>
{
    /// <summary>Creates an empty counter.</summary>
    public PythonCounter()
    {
    }

    /// <summary>Creates a counter with the given items in order.</summary>
    public PythonCounter(IEnumerable<KeyValuePair<object, object?>> items)
        : base(items)
    {
    }

    /// <summary>Creates the counter that Python's <c>Counter(elements)</c> builds: each distinct element with its number of occurrences, in order of first occurrence.</summary>
    public static PythonCounter FromElements(IEnumerable<object> elements)
    {
        ArgumentNullException.ThrowIfNull(elements);
        var counter = new PythonCounter();
        foreach (object element in elements)
        {
            counter[element] = counter.TryGetValue(element, out object? count) ? (long)count! + 1 : 1L;
        }

        return counter;
    }
}
