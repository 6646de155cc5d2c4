namespace Orleans.Optim.Engine;

/// <summary>
/// Sort key that reproduces the order of torch's <c>optimizer.state</c>: entries appear in the order they were created,
/// and within one step in param-ID order, because torch walks groups and params in order.
/// </summary>
/// <param name="Step">Global step at which the state was created; -1 for state loaded by <c>load_state_dict</c>.</param>
/// <param name="Position">Param ID for created state; position in the loaded <c>state</c> dict for loaded state.</param>
public readonly record struct StateOrderKey(long Step, long Position) : IComparable<StateOrderKey>
{
    /// <summary>Returns the key of state loaded at <paramref name="position"/> of a loaded <c>state</c> dict.</summary>
    public static StateOrderKey Loaded(int position) => new(-1, position);

    /// <inheritdoc/>
    public int CompareTo(StateOrderKey other)
    {
        int byStep = Step.CompareTo(other.Step);
        return byStep != 0 ? byStep : Position.CompareTo(other.Position);
    }
}
