namespace Orleans.Optim.Algorithms;

/// <summary>
/// Torch's optimizer state of one parameter (<c>optimizer.state[p]</c>), restricted to one shard's slice, with the
/// entries in the order torch creates them.
/// </summary>
public sealed class SliceState
{
    private readonly List<StateEntry> _entries;

    /// <summary>Creates a state from entries in torch's order.</summary>
    public SliceState(IEnumerable<StateEntry> entries)
    {
        _entries = [.. entries];
    }

    /// <summary>Entries in torch's order.</summary>
    public IReadOnlyList<StateEntry> Entries => _entries;

    /// <summary>Returns the entry with the given name.</summary>
    /// <exception cref="KeyNotFoundException">There is no such entry.</exception>
    public StateEntry this[string name] =>
        Find(name) ?? throw new KeyNotFoundException(
            $"State entry '{name}' is missing; the state has {string.Join(", ", _entries.Select(e => e.Name))}.");

    /// <summary>Returns the entry with the given name, or <see langword="null"/>.</summary>
    public StateEntry? Find(string name)
    {
        foreach (var entry in _entries)
        {
            if (entry.Name == name)
            {
                return entry;
            }
        }

        return null;
    }

    /// <summary>Returns the slice of a parameter-shaped entry.</summary>
    /// <exception cref="InvalidOperationException">The entry has no tensor value.</exception>
    public float[] Tensor(string name) =>
        this[name].Values ?? throw new InvalidOperationException($"State entry '{name}' is {this[name].Kind}, not a tensor.");

    /// <summary>Returns a deep copy.</summary>
    public SliceState Clone() => new(_entries.Select(e => e.Clone()));
}
