namespace Orleans.Optim.Python;

/// <summary>
/// A Python <c>collections.OrderedDict</c>, kept apart from a plain <c>dict</c> so that a model state dict
/// written by this project has the same type as torch's <c>model.state_dict()</c>.
/// </summary>
public sealed class PythonOrderedDict : OrderedDictionary<object, object?>
{
    /// <summary>Creates an empty ordered dict.</summary>
    public PythonOrderedDict()
    {
    }

    /// <summary>Creates an ordered dict with the given items in order.</summary>
    public PythonOrderedDict(IEnumerable<KeyValuePair<object, object?>> items)
        : base(items)
    {
    }
}
