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

    /// <summary>
    /// Value of the <c>_metadata</c> attribute that torch's <c>Module.state_dict()</c> sets: an OrderedDict from
    /// module prefix to a dict such as <c>{'version': 1}</c>, which <c>load_state_dict</c> passes to each module.
    /// <see langword="null"/> when the dict has no such attribute.
    /// </summary>
    /// <remarks>
    /// It is an attribute, not an item, so it takes no part in <see cref="PythonValues.StrictEquals"/>, as in Python's
    /// <c>==</c>. The <c>.pt</c> reader and writer keep it.
    /// </remarks>
    public OrderedDictionary<object, object?>? Metadata { get; set; }
}
