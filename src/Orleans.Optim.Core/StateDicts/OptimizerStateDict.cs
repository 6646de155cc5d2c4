using Orleans.Optim.Python;

namespace Orleans.Optim.StateDicts;

/// <summary>
/// Torch's <c>optimizer.state_dict()</c>: <c>state</c> keyed by integer param ID, then <c>param_groups</c>, each a dict of
/// hyperparameters with <c>params</c> last.
/// </summary>
/// <remarks>
/// Values follow <see cref="PythonValues"/>: state entries are tensors, numbers or <see langword="null"/>; group values keep
/// their Python types (<c>int</c> against <c>float</c>, tuple against list). Key order is torch's and is kept.
/// </remarks>
public sealed class OptimizerStateDict
{
    /// <summary>Creates a state dict from its two parts.</summary>
    public OptimizerStateDict(
        OrderedDictionary<long, OrderedDictionary<string, object?>> state,
        IReadOnlyList<OrderedDictionary<string, object?>> paramGroups)
    {
        State = state;
        ParamGroups = paramGroups;
    }

    /// <summary>Per-parameter state, keyed by param ID, in the order torch created (or loaded) it.</summary>
    public OrderedDictionary<long, OrderedDictionary<string, object?>> State { get; }

    /// <summary>Param groups, each with <c>params</c> (a list of param IDs) as its last key.</summary>
    public IReadOnlyList<OrderedDictionary<string, object?>> ParamGroups { get; }

    /// <summary>Returns the param IDs of group <paramref name="groupIndex"/>.</summary>
    public IReadOnlyList<long> ParamIds(int groupIndex) =>
        ((List<object?>)ParamGroups[groupIndex]["params"]!).Select(id => (long)id!).ToList();

    /// <summary>
    /// Returns the Python value tree <c>{'state': {...}, 'param_groups': [...]}</c> that a <c>.pt</c> writer pickles.
    /// </summary>
    public OrderedDictionary<object, object?> ToPython()
    {
        var state = new OrderedDictionary<object, object?>();
        foreach (var (id, entries) in State)
        {
            var entryDict = new OrderedDictionary<object, object?>();
            foreach (var (name, value) in entries)
            {
                entryDict[name] = value;
            }

            state[id] = entryDict;
        }

        var groups = new List<object?>();
        foreach (var group in ParamGroups)
        {
            var groupDict = new OrderedDictionary<object, object?>();
            foreach (var (key, value) in group)
            {
                groupDict[key] = value;
            }

            groups.Add(groupDict);
        }

        return new OrderedDictionary<object, object?> { ["state"] = state, ["param_groups"] = groups };
    }

    /// <summary>
    /// Reads a Python value tree as an optimizer state dict, checking torch's structure.
    /// </summary>
    /// <exception cref="StateDictException">The tree is not an optimizer state dict; the message names the path at fault.</exception>
    public static OptimizerStateDict FromPython(object? root)
    {
        if (root is not OrderedDictionary<object, object?> top)
        {
            throw new StateDictException(
                $"Expected an optimizer state dict (a dict with 'state' and 'param_groups'), found {PythonValues.TypeName(root)}. " +
                "A model state dict (name to tensor) cannot be loaded into an optimizer.");
        }

        if (!top.TryGetValue("state", out object? stateValue) || stateValue is not OrderedDictionary<object, object?> stateDict)
        {
            throw new StateDictException(
                $"Expected key 'state' holding a dict, found {(top.ContainsKey("state") ? PythonValues.TypeName(top["state"]) : "no such key")}; " +
                $"the root has keys {FormatKeys(top.Keys)}. Is this an optimizer state dict?");
        }

        if (!top.TryGetValue("param_groups", out object? groupsValue) || groupsValue is not List<object?> groupList)
        {
            throw new StateDictException(
                $"Expected key 'param_groups' holding a list, found {(top.ContainsKey("param_groups") ? PythonValues.TypeName(top["param_groups"]) : "no such key")}; " +
                $"the root has keys {FormatKeys(top.Keys)}. Is this an optimizer state dict?");
        }

        var state = new OrderedDictionary<long, OrderedDictionary<string, object?>>();
        foreach (var (key, value) in stateDict)
        {
            long id = key switch
            {
                long l => l,
                int i => i,
                _ => throw new StateDictException(
                    $"Expected integer param IDs as keys of 'state', found {PythonValues.TypeName(key)} {PythonValues.Format(key)}. " +
                    "State dicts keyed by tensors or names are not torch's saved format."),
            };
            if (value is not OrderedDictionary<object, object?> entryDict)
            {
                throw new StateDictException($"Expected a dict at state[{id}], found {PythonValues.TypeName(value)}.");
            }

            var entries = new OrderedDictionary<string, object?>();
            foreach (var (entryKey, entryValue) in entryDict)
            {
                if (entryKey is not string name)
                {
                    throw new StateDictException($"Expected string keys in state[{id}], found {PythonValues.TypeName(entryKey)} {PythonValues.Format(entryKey)}.");
                }

                entries[name] = entryValue;
            }

            state[id] = entries;
        }

        var groups = new List<OrderedDictionary<string, object?>>();
        for (int g = 0; g < groupList.Count; g++)
        {
            if (groupList[g] is not OrderedDictionary<object, object?> groupDict)
            {
                throw new StateDictException($"Expected a dict at param_groups[{g}], found {PythonValues.TypeName(groupList[g])}.");
            }

            var group = new OrderedDictionary<string, object?>();
            foreach (var (key, value) in groupDict)
            {
                if (key is not string name)
                {
                    throw new StateDictException($"Expected string keys in param_groups[{g}], found {PythonValues.TypeName(key)} {PythonValues.Format(key)}.");
                }

                group[name] = value;
            }

            if (!group.TryGetValue("params", out object? paramsValue) || paramsValue is not List<object?> paramIds)
            {
                throw new StateDictException(
                    $"Expected param_groups[{g}]['params'] to be a list of param IDs, found {(group.ContainsKey("params") ? PythonValues.TypeName(group["params"]) : "no such key")}.");
            }

            var normalizedIds = new List<object?>();
            foreach (object? id in paramIds)
            {
                normalizedIds.Add(id switch
                {
                    long l => l,
                    int i => (long)i,
                    _ => throw new StateDictException(
                        $"Expected integer param IDs in param_groups[{g}]['params'], found {PythonValues.TypeName(id)} {PythonValues.Format(id)}."),
                });
            }

            // 'params' comes last, as torch's state_dict() writes it.
            group.Remove("params");
            group["params"] = normalizedIds;
            groups.Add(group);
        }

        return new OptimizerStateDict(state, groups);
    }

    /// <summary>Formats the first keys of a dict for a message, so that a dict with many or long keys still gives a short message.</summary>
    private static string FormatKeys(ICollection<object> keys)
    {
        const int MaxKeysShown = 10;
        string firstKeys = PythonValues.Format(keys.Take(MaxKeysShown).ToList<object?>());
        return keys.Count > MaxKeysShown ? $"{firstKeys} and {keys.Count - MaxKeysShown} more" : firstKeys;
    }
}
