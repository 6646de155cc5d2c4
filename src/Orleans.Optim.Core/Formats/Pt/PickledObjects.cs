namespace Orleans.Optim.Formats.Pt;

/// <summary>
/// An object that a pickle creates with NEWOBJ from an allowed class (<c>OneCycleLR</c> or an optimizer), kept as
/// an inert placeholder: its BUILD state is checked to be a dict and then dropped.
/// </summary>
/// <remarks>
/// Torch 1.13's <c>OneCycleLR.state_dict()</c> contains <c>anneal_func</c>, a bound method of the scheduler, so
/// <c>torch.save</c> pickles the scheduler object and its optimizer. The reader needs only the method's name, so a
/// placeholder may appear as the instance of <c>getattr</c> and nowhere in the value that the reader returns.
/// </remarks>
internal sealed class PickledObject(TorchGlobal type)
{
    /// <summary>The class the pickle instantiated.</summary>
    public TorchGlobal Type { get; } = type;

    /// <inheritdoc/>
    public override string ToString() => $"a {Type.QualifiedName} object";
}

/// <summary>
/// The <c>defaultdict(dict)</c> of a pickled optimizer's <c>state</c>, whose keys are parameter tensors.
/// It is part of a dropped <see cref="PickledObject"/> state and may not appear in the value that the reader returns.
/// </summary>
internal sealed class PickledDefaultDict : OrderedDictionary<object, object?>
{
}
