using Orleans.Optim.Algorithms;
using Orleans.Optim.Layout;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Engine;

/// <summary>
/// The whole optimizer in one process, sliced into shards exactly as the cluster slices it: the reference that
/// cluster runs are replayed against, and a way to use the algorithms without Orleans.
/// </summary>
/// <remarks>Not thread-safe. Gradients are per parameter; <see langword="null"/> means the parameter has no gradient.</remarks>
public sealed class LocalOptimizer
{
    private readonly OrderedDictionary<string, object?> _defaults;
    private readonly List<OrderedDictionary<string, object?>> _groups;
    private readonly List<ParameterSlice> _slices;
    private OptimizerSpec _spec;

    /// <summary>Creates the optimizer with initial parameter values in param-ID order.</summary>
    /// <exception cref="ArgumentException">The spec is invalid or the initial values do not match the shapes.</exception>
    public LocalOptimizer(OptimizerSpec spec, IReadOnlyList<float[]> initialValues, KernelPath path = KernelPath.Vectorized)
    {
        (Algorithm, _defaults, _groups) = spec.Resolve();
        _spec = spec;
        Layout = OptimizerLayout.Plan(spec);
        Path = path;
        if (initialValues.Count != Layout.Parameters.Count)
        {
            throw new ArgumentException($"Expected initial values for {Layout.Parameters.Count} parameters, found {initialValues.Count}.", nameof(initialValues));
        }

        _slices = [];
        foreach (var shard in Layout.Shards)
        {
            var parameter = Layout.Parameters[(int)shard.ParamId];
            float[] values = initialValues[(int)shard.ParamId];
            if (values.LongLength != parameter.NumElements)
            {
                throw new ArgumentException(
                    $"Initial values of param {parameter.Id} have {values.Length} elements, but shape {Tensor.FormatShape(parameter.Shape)} needs {parameter.NumElements}.",
                    nameof(initialValues));
            }

            var options = Algorithm.ParseOptions(_groups[parameter.GroupIndex], parameter.GroupIndex);
            _slices.Add(new ParameterSlice(Algorithm, options, parameter.Id, values.AsSpan((int)shard.Offset, shard.Length).ToArray(), _defaults));
        }
    }

    /// <summary>The algorithm.</summary>
    public OptimizerAlgorithm Algorithm { get; }

    /// <summary>Parameters, groups and shard map.</summary>
    public OptimizerLayout Layout { get; private set; }

    /// <summary>Which kernel implementation runs.</summary>
    public KernelPath Path { get; }

    /// <summary>Whether the last step was skipped because a gradient was not finite (with <see cref="OptimizerSpec.SkipNonFiniteSteps"/>).</summary>
    public bool LastStepSkipped { get; private set; }

    /// <summary>Number of steps taken.</summary>
    public long GlobalStep { get; private set; }

    /// <summary>Each group's hyperparameters, without <c>params</c>.</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, object?>> ParamGroups => _groups;

    /// <summary>Applies one step. <paramref name="gradients"/> has one entry per parameter, in param-ID order.</summary>
    public void Step(IReadOnlyList<float[]?> gradients)
    {
        if (gradients.Count != Layout.Parameters.Count)
        {
            throw new ArgumentException($"Expected gradients for {Layout.Parameters.Count} parameters, found {gradients.Count}.", nameof(gradients));
        }

        GlobalStep++;
        if (_spec.SkipNonFiniteSteps && gradients.Any(g => g is not null && g.Any(v => !float.IsFinite(v))))
        {
            LastStepSkipped = true;
            return;
        }

        LastStepSkipped = false;
        foreach (var shard in Layout.Shards)
        {
            float[]? gradient = gradients[(int)shard.ParamId];
            var slice = gradient is null ? ReadOnlySpan<float>.Empty : gradient.AsSpan((int)shard.Offset, shard.Length);
            _slices[shard.Index].Step(slice, gradient is not null, GlobalStep, Path);
        }
    }

    /// <summary>Sets <c>param_groups[group][key]</c>; it takes effect from the next step.</summary>
    /// <exception cref="InvalidHyperparameterException">The new value fails the algorithm's checks; nothing changes.</exception>
    public void SetHyperparameter(int group, string key, object? value)
    {
        var updated = new OrderedDictionary<string, object?>(_groups[group]) { [key] = value };
        var options = Algorithm.ParseOptions(updated, group);
        _groups[group] = updated;
        foreach (var shard in Layout.Shards.Where(s => Layout.Parameters[(int)s.ParamId].GroupIndex == group))
        {
            _slices[shard.Index].SetOptions(options);
        }
    }

    /// <summary>
    /// Adds a param group with new parameters, as torch's <c>add_param_group</c>: the next param IDs, missing
    /// hyperparameters from the defaults, and no state until the parameters' first gradients.
    /// </summary>
    /// <exception cref="ArgumentException">The group or its values are invalid; nothing changes.</exception>
    /// <exception cref="InvalidHyperparameterException">A hyperparameter fails torch's checks; nothing changes.</exception>
    public void AddParamGroup(ParamGroupSpec group, IReadOnlyList<float[]> initialValues)
    {
        var extended = _spec with { Groups = [.. _spec.Groups, group] };
        var (_, _, groups) = extended.Resolve();
        var layout = OptimizerLayout.Plan(extended);
        int groupIndex = _groups.Count;
        var newShards = layout.Shards.Where(s => layout.Parameters[(int)s.ParamId].GroupIndex == groupIndex).ToList();
        long firstId = layout.Parameters.First(p => p.GroupIndex == groupIndex).Id;
        foreach (var shard in newShards)
        {
            float[] values = initialValues[(int)(shard.ParamId - firstId)];
            if (values.LongLength != layout.Parameters[(int)shard.ParamId].NumElements)
            {
                throw new ArgumentException($"Initial values of param {shard.ParamId} have {values.Length} elements; expected {layout.Parameters[(int)shard.ParamId].NumElements}.", nameof(initialValues));
            }
        }

        var options = Algorithm.ParseOptions(groups[groupIndex], groupIndex);
        foreach (var shard in newShards)
        {
            float[] values = initialValues[(int)(shard.ParamId - firstId)];
            _slices.Add(new ParameterSlice(Algorithm, options, shard.ParamId, values.AsSpan((int)shard.Offset, shard.Length).ToArray(), _defaults));
        }

        _groups.Add(groups[groupIndex]);
        _spec = extended;
        Layout = layout;
    }

    /// <summary>Returns the current values of parameter <paramref name="paramId"/>.</summary>
    public float[] Parameter(long paramId)
    {
        var parameter = Layout.Parameters[(int)paramId];
        var values = new float[parameter.NumElements];
        foreach (var shard in Layout.ShardsOf(paramId))
        {
            _slices[shard.Index].Values.CopyTo(values, shard.Offset);
        }

        return values;
    }

    /// <summary>Returns torch's state dict.</summary>
    public OptimizerStateDict StateDict() =>
        StateDictAssembler.Assemble(
            Layout,
            _groups,
            Layout.Shards.Select(s => new SliceSnapshot(s, _slices[s.Index].State?.Clone(), _slices[s.Index].OrderKey)).ToList());

    /// <summary>Loads a state dict as torch's <c>load_state_dict</c> does, after checking all of it.</summary>
    /// <exception cref="StateDictException">The state dict does not fit; nothing changes.</exception>
    public void LoadStateDict(OptimizerStateDict stateDict)
    {
        var plan = LoadPlan.Create(Algorithm, Layout, _defaults, stateDict);
        for (int g = 0; g < _groups.Count; g++)
        {
            _groups[g] = plan.Groups[g];
        }

        foreach (var shard in Layout.Shards)
        {
            var parameter = Layout.Parameters[(int)shard.ParamId];
            _slices[shard.Index].Replace(null, plan.SliceFor(shard), plan.OrderKeyOf(shard.ParamId), plan.Options[parameter.GroupIndex]);
        }
    }
}
