namespace Orleans.Optim.Schedulers;

/// <summary>
/// The param groups of one optimizer and the keys of its <c>defaults</c>, which learning-rate schedulers read and
/// change in place, as torch's schedulers change <c>optimizer.param_groups</c>.
/// </summary>
/// <remarks>
/// Each group is a dict of hyperparameters without <c>params</c>, with the Python values of
/// <see cref="Python.PythonValues"/>: <c>lr</c> is a <see cref="long"/> or <see cref="double"/>, and <c>betas</c>
/// is an <c>object?[]</c> tuple. A scheduler writes <c>lr</c> at every step, adds <c>initial_lr</c> in its
/// constructor and, for <see cref="OneCycleLR"/>, also <c>max_lr</c>, <c>min_lr</c>, <c>max_momentum</c>,
/// <c>base_momentum</c> and a new <c>momentum</c> or <c>betas</c>. Schedulers of one optimizer share one instance of
/// this class, which <see cref="SequentialLR"/> checks.
/// </remarks>
public sealed class OptimizerParamGroups
{
    /// <summary>Wraps the param groups of an optimizer.</summary>
    /// <param name="paramGroups">The groups in order. Schedulers change these dicts, not copies of them.</param>
    /// <param name="defaultKeys">The keys of the optimizer's <c>defaults</c>, such as <c>lr</c> and <c>betas</c> for Adam.</param>
    /// <exception cref="ArgumentException">A group is null.</exception>
    public OptimizerParamGroups(IList<OrderedDictionary<string, object?>> paramGroups, IEnumerable<string> defaultKeys)
    {
        ArgumentNullException.ThrowIfNull(paramGroups);
        ArgumentNullException.ThrowIfNull(defaultKeys);
        for (int i = 0; i < paramGroups.Count; i++)
        {
            if (paramGroups[i] is null)
            {
                throw new ArgumentException($"param_groups[{i}] is null. Pass a dict of hyperparameters for every group.", nameof(paramGroups));
            }
        }

        ParamGroups = paramGroups;
        DefaultKeys = defaultKeys.ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>The groups, which schedulers change in place.</summary>
    public IList<OrderedDictionary<string, object?>> ParamGroups { get; }

    /// <summary>The keys of the optimizer's <c>defaults</c>.</summary>
    public IReadOnlySet<string> DefaultKeys { get; }

    /// <summary>Copies every group's items, so that <see cref="Restore"/> can undo a constructor that failed halfway.</summary>
    internal List<KeyValuePair<string, object?>[]> Snapshot() => ParamGroups.Select(group => group.ToArray()).ToList();

    /// <summary>Puts back the items of <see cref="Snapshot"/> into the same dict objects.</summary>
    internal void Restore(List<KeyValuePair<string, object?>[]> snapshot)
    {
        for (int i = 0; i < snapshot.Count && i < ParamGroups.Count; i++)
        {
            ParamGroups[i].Clear();
            foreach (var (key, value) in snapshot[i])
            {
                ParamGroups[i].Add(key, value);
            }
        }
    }
}
