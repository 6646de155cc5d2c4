using System.Buffers.Binary;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Layout;
using Orleans.Optim.Python;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Engine;

/// <summary>
/// A checked <c>load_state_dict</c>: the groups and state of a loaded state dict, validated against the optimizer and
/// converted as torch converts them, ready to be split over the shards.
/// </summary>
/// <remarks>
/// Validation happens entirely in <see cref="Create"/>, before anything changes. It checks what torch checks: group
/// count and params per group. It also checks what torch would only trip over later: every state entry's name for the
/// algorithm, its type, every tensor's shape against its parameter, hyperparameters, and parameter names where both
/// sides have them. Then it behaves as torch: the loaded groups' hyperparameters replace the current ones, missing group keys take
/// the defaults, state tensors other than <c>step</c> become float32 (the parameters' dtype) and <c>step</c> keeps its dtype.
/// </remarks>
public sealed class LoadPlan
{
    private readonly Dictionary<long, (OrderedDictionary<string, object?> Entries, int Position)> _state;

    private LoadPlan(
        List<OrderedDictionary<string, object?>> groups,
        List<AlgorithmOptions> options,
        Dictionary<long, (OrderedDictionary<string, object?> Entries, int Position)> state)
    {
        Groups = groups;
        Options = options;
        _state = state;
    }

    /// <summary>The loaded groups' hyperparameters, without <c>params</c>, with missing keys filled from the defaults.</summary>
    public IReadOnlyList<OrderedDictionary<string, object?>> Groups { get; }

    /// <summary>The loaded groups' parsed hyperparameters.</summary>
    public IReadOnlyList<AlgorithmOptions> Options { get; }

    /// <summary>Number of parameters that have state after the load.</summary>
    public int StateCount => _state.Count;

    /// <summary>
    /// Validates <paramref name="loaded"/> against the optimizer and builds the plan.
    /// </summary>
    /// <param name="algorithm">The optimizer's algorithm.</param>
    /// <param name="layout">The optimizer's parameters and groups.</param>
    /// <param name="defaults">The optimizer's defaults, for keys a loaded group lacks.</param>
    /// <param name="loaded">The state dict to load.</param>
    /// <exception cref="StateDictException">The state dict does not fit; the message names the group, param and key.</exception>
    public static LoadPlan Create(
        OptimizerAlgorithm algorithm,
        OptimizerLayout layout,
        IReadOnlyDictionary<string, object?> defaults,
        OptimizerStateDict loaded)
    {
        if (loaded.ParamGroups.Count != layout.GroupCount)
        {
            throw new StateDictException(
                $"loaded state dict has a different number of parameter groups: the optimizer has {layout.GroupCount}, " +
                $"the loaded state dict has {loaded.ParamGroups.Count}. Load a state dict saved from an optimizer with the same param groups.");
        }

        // torch maps saved param IDs to the optimizer's parameters by position over all groups.
        var idMap = new Dictionary<long, ParameterInfo>();
        for (int g = 0; g < layout.GroupCount; g++)
        {
            var current = layout.GroupParamIds(g);
            var saved = loaded.ParamIds(g);
            if (current.Count != saved.Count)
            {
                throw new StateDictException(
                    $"loaded state dict contains a parameter group that doesn't match the size of optimizer's group: " +
                    $"param_groups[{g}] has {current.Count} params in the optimizer and {saved.Count} in the loaded state dict.");
            }

            CheckNames(layout, loaded.ParamGroups[g], current, g);
            for (int i = 0; i < saved.Count; i++)
            {
                if (!idMap.TryAdd(saved[i], layout.Parameters[(int)current[i]]))
                {
                    throw new StateDictException($"param_groups[{g}]['params'] lists param ID {saved[i]} a second time: every param ID may appear once.");
                }
            }
        }

        var groups = new List<OrderedDictionary<string, object?>>();
        var options = new List<AlgorithmOptions>();
        for (int g = 0; g < layout.GroupCount; g++)
        {
            var group = new OrderedDictionary<string, object?>(loaded.ParamGroups[g]);
            group.Remove("params");
            group.Remove(StateDictAssembler.ParamNamesKey);
            algorithm.FillMissingDefaults(group, defaults);
            try
            {
                options.Add(algorithm.ParseOptions(group, g));
            }
            catch (InvalidHyperparameterException e)
            {
                throw new StateDictException($"The loaded state dict has an invalid hyperparameter: {e.Reason}", e);
            }

            groups.Add(group);
        }

        var state = new Dictionary<long, (OrderedDictionary<string, object?>, int)>();
        int position = 0;
        foreach (var (savedId, entries) in loaded.State)
        {
            if (!idMap.TryGetValue(savedId, out var parameter))
            {
                throw new StateDictException(
                    $"state[{savedId}] belongs to no parameter: the loaded param_groups list param IDs {FormatIds(idMap.Keys)}. " +
                    "The state dict is inconsistent; re-save it from its optimizer.");
            }

            var specs = algorithm.StateEntries(options[parameter.GroupIndex]);
            state[parameter.Id] = (ConvertEntries(algorithm, specs, parameter, savedId, entries), position++);
        }

        if (algorithm.CreatesStateEagerly)
        {
            CheckEveryParameterHasState(algorithm, idMap, state);
        }

        return new LoadPlan(groups, options, state);
    }

    /// <summary>Returns whether the parameter has state after the load.</summary>
    public bool HasState(long paramId) => _state.ContainsKey(paramId);

    /// <summary>Returns the position of the parameter's state in torch's state order after the load.</summary>
    public StateOrderKey OrderKeyOf(long paramId) =>
        _state.TryGetValue(paramId, out var value) ? StateOrderKey.Loaded(value.Position) : default;

    /// <summary>Returns a shard's slice of the loaded state, or <see langword="null"/> when its parameter has none.</summary>
    public SliceState? SliceFor(ShardInfo shard)
    {
        if (!_state.TryGetValue(shard.ParamId, out var value))
        {
            return null;
        }

        var entries = new List<StateEntry>();
        foreach (var (name, entryValue) in value.Entries)
        {
            entries.Add(entryValue switch
            {
                null => StateEntry.None(name),
                Tensor tensor when tensor.Shape.Length == 0 => StateEntry.ScalarTensor(name, ReadScalar(tensor), tensor.DType),
                Tensor tensor => StateEntry.Slice(name, tensor.AsFloats().Slice(checked((int)shard.Offset), shard.Length).ToArray()),
                long number => StateEntry.Int(name, number),
                double number => StateEntry.Float(name, number),
                _ => throw new InvalidOperationException($"Unexpected state value {PythonValues.TypeName(entryValue)} for '{name}'."),
            });
        }

        return new SliceState(entries);
    }

    // An algorithm that creates state in its constructor never creates it later, so torch fails at the first step of a
    // parameter whose state the loaded dict lacks.
    private static void CheckEveryParameterHasState(
        OptimizerAlgorithm algorithm,
        Dictionary<long, ParameterInfo> idMap,
        Dictionary<long, (OrderedDictionary<string, object?>, int)> state)
    {
        foreach (var (savedId, parameter) in idMap)
        {
            if (!state.ContainsKey(parameter.Id))
            {
                string where = parameter.Name is null ? $"param ID {savedId}" : $"param ID {savedId} ('{parameter.Name}')";
                throw new StateDictException(
                    $"The loaded state has no entry for {where}: {algorithm.Name} creates the state of every parameter in its constructor " +
                    "and cannot step a parameter without it. Load a state dict that has state for every parameter of its param_groups.");
            }
        }
    }

    private static void CheckNames(OptimizerLayout layout, OrderedDictionary<string, object?> loadedGroup, IReadOnlyList<long> current, int g)
    {
        if (!loadedGroup.TryGetValue(StateDictAssembler.ParamNamesKey, out object? namesValue) || namesValue is null)
        {
            return;
        }

        if (namesValue is not List<object?> names || names.Count != current.Count || names.Any(n => n is not string))
        {
            throw new StateDictException(
                $"param_groups[{g}]['{StateDictAssembler.ParamNamesKey}'] must be a list of {current.Count} strings, found {PythonValues.Format(namesValue)}.");
        }

        for (int i = 0; i < current.Count; i++)
        {
            string? expected = layout.Parameters[(int)current[i]].Name;
            if (expected is not null && expected != (string)names[i]!)
            {
                throw new StateDictException(
                    $"Parameter name mismatch in param_groups[{g}] at position {i} (param ID {current[i]}): the optimizer has '{expected}', " +
                    $"the loaded state dict has '{names[i]}'. Load a state dict saved for the same model, or list the parameters in the same order.");
            }
        }
    }

    private static OrderedDictionary<string, object?> ConvertEntries(
        OptimizerAlgorithm algorithm,
        IReadOnlyList<StateEntrySpec> specs,
        ParameterInfo parameter,
        long savedId,
        OrderedDictionary<string, object?> entries)
    {
        string where = parameter.Name is null ? $"state[{savedId}]" : $"state[{savedId}] ('{parameter.Name}')";
        var expectedNames = specs.Select(s => s.Name).ToList();
        foreach (var spec in specs)
        {
            if (!entries.ContainsKey(spec.Name))
            {
                throw new StateDictException(
                    $"{where} is missing entry '{spec.Name}': {algorithm.Name} with these hyperparameters keeps {FormatNames(expectedNames)}, " +
                    $"found {FormatNames(entries.Keys)}.");
            }
        }

        foreach (string name in entries.Keys)
        {
            if (!expectedNames.Contains(name))
            {
                throw new StateDictException(
                    $"{where} has unexpected entry '{name}': {algorithm.Name} with these hyperparameters keeps {FormatNames(expectedNames)}. " +
                    "Was it saved by another optimizer class, or with other flags such as amsgrad?");
            }
        }

        var converted = new OrderedDictionary<string, object?>();
        foreach (var spec in specs)
        {
            converted[spec.Name] = ConvertValue(spec, parameter, where, entries[spec.Name]);
        }

        return converted;
    }

    private static object? ConvertValue(StateEntrySpec spec, ParameterInfo parameter, string where, object? value)
    {
        string found = $"{PythonValues.TypeName(value)}";
        switch (spec.Kind)
        {
            case StateValueKind.ParamTensor:
                if (value is null && spec.AllowsNone)
                {
                    return null;
                }

                if (value is not Tensor tensor || !tensor.DType.IsFloatingPoint() || !tensor.HasShape(parameter.Shape))
                {
                    throw new StateDictException(
                        $"{where} entry '{spec.Name}': expected a floating-point tensor of shape {Tensor.FormatShape(parameter.Shape)} " +
                        $"like its parameter{(spec.AllowsNone ? " or None" : string.Empty)}, found {found}.");
                }

                return tensor.ToFloat32();

            case StateValueKind.ScalarTensor:
                // torch's __setstate__ turns a Python number into tensor(float(step)); a 0-d tensor keeps its dtype.
                if (value is long or int or double)
                {
                    return Tensor.Scalar((float)PythonValues.ToDouble(value));
                }

                if (value is Tensor scalar && scalar.Shape.Length == 0 && scalar.DType is DType.Float32 or DType.Float64 or DType.Int64)
                {
                    // torch's load_state_dict casts every state tensor except step to the parameter's dtype, such as
                    // ASGD's eta and mu and NAdam's mu_product.
                    return spec.Name == "step" ? scalar : scalar.ToFloat32();
                }

                throw new StateDictException(
                    $"{where} entry '{spec.Name}': expected a 0-d float32, float64 or int64 tensor or a number, found {found}.");

            case StateValueKind.Int:
                return value is long or int
                    ? Convert.ToInt64(value)
                    : throw new StateDictException($"{where} entry '{spec.Name}': expected a Python int, found {found}.");

            case StateValueKind.Float:
                return PythonValues.IsNumber(value)
                    ? PythonValues.ToDouble(value)
                    : throw new StateDictException($"{where} entry '{spec.Name}': expected a Python float, found {found}.");

            default:
                return value is null
                    ? null
                    : throw new StateDictException($"{where} entry '{spec.Name}': expected None, found {found}.");
        }
    }

    private static double ReadScalar(Tensor tensor) => tensor.DType switch
    {
        DType.Float32 => BinaryPrimitives.ReadSingleLittleEndian(tensor.Data),
        DType.Float64 => BinaryPrimitives.ReadDoubleLittleEndian(tensor.Data),
        DType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(tensor.Data),
        _ => throw new InvalidOperationException($"Unsupported scalar dtype {tensor.DType.TorchName()}."),
    };

    private static string FormatNames(IEnumerable<string> names) => "[" + string.Join(", ", names.Select(n => "'" + n + "'")) + "]";

    private static string FormatIds(IEnumerable<long> ids) => "[" + string.Join(", ", ids.Order()) + "]";
}
