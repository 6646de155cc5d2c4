using Orleans.Optim.Algorithms;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Layout;

/// <summary>How a synchronous step combines the gradients that the workers pushed.</summary>
public enum GradientReduction
{
    /// <summary>Sum in rank order, then divide by the world size (the default, as data-parallel averaging).</summary>
    Mean,

    /// <summary>Sum in rank order.</summary>
    Sum,
}

/// <summary>A parameter to optimize: an optional name (such as <c>0.weight</c>) and a shape.</summary>
/// <param name="Name">Name as in a model's state dict; <see langword="null"/> when unnamed.</param>
/// <param name="Shape">Sizes of each dimension.</param>
public sealed record ParameterSpec(string? Name, long[] Shape)
{
    /// <summary>Number of elements.</summary>
    public long NumElements => Tensor.CountElements(Shape);
}

/// <summary>One param group as a torch user writes it: its own hyperparameters, in order, and its parameters.</summary>
/// <param name="Options">Hyperparameters set for this group, in the order given; the rest come from the defaults.</param>
/// <param name="Parameters">Parameters of the group, in order.</param>
public sealed record ParamGroupSpec(IReadOnlyList<KeyValuePair<string, object?>> Options, IReadOnlyList<ParameterSpec> Parameters);

/// <summary>
/// Everything needed to create an optimizer, as torch's <c>torch.optim.&lt;Class&gt;(param_groups, **kwargs)</c> plus the
/// data-parallel settings.
/// </summary>
public sealed record OptimizerSpec
{
    /// <summary>Default maximum number of elements per shard: 1 Mi elements, 4 MiB per float32 buffer.</summary>
    public const int DefaultMaxShardElements = 1 << 20;

    /// <summary>
    /// Largest accepted maximum shard size: 2 Mi elements, so that a shard's snapshot (values and up to four state
    /// buffers) stays well under Orleans' message size limit.
    /// </summary>
    public const int MaxShardElementsLimit = 1 << 21;

    /// <summary>Torch class name, such as <c>Adam</c>.</summary>
    public required string Algorithm { get; init; }

    /// <summary>Keyword arguments of the constructor, which replace the algorithm's defaults.</summary>
    public IReadOnlyList<KeyValuePair<string, object?>> DefaultOptions { get; init; } = [];

    /// <summary>Param groups in order; param IDs are assigned over them in order, starting at 0.</summary>
    public required IReadOnlyList<ParamGroupSpec> Groups { get; init; }

    /// <summary>Number of data-parallel workers that push a gradient for every synchronous step.</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>How the workers' gradients are combined.</summary>
    public GradientReduction Reduction { get; init; } = GradientReduction.Mean;

    /// <summary>Maximum number of elements per shard; larger parameters are split over several shards.</summary>
    public int MaxShardElements { get; init; } = DefaultMaxShardElements;

    /// <summary>
    /// Skip a whole step, on every shard, when any reduced gradient holds NaN or infinity, as mixed-precision loss
    /// scaling (torch's GradScaler) needs. Off by default: as in torch, non-finite gradients then flow into the update.
    /// </summary>
    public bool SkipNonFiniteSteps { get; init; }

    /// <summary>
    /// Checks the spec and builds torch's defaults and param groups from it.
    /// </summary>
    /// <returns>The algorithm, the defaults and each group's options (without <c>params</c>).</returns>
    /// <exception cref="ArgumentException">The spec is invalid; the message names the value.</exception>
    /// <exception cref="InvalidHyperparameterException">A hyperparameter fails torch's checks.</exception>
    /// <exception cref="NotSupportedException">The algorithm is not implemented.</exception>
    public (OptimizerAlgorithm Algorithm, OrderedDictionary<string, object?> Defaults, List<OrderedDictionary<string, object?>> Groups) Resolve()
    {
        var algorithm = OptimizerAlgorithms.Get(Algorithm);
        if (Groups.Count == 0)
        {
            throw new ArgumentException("optimizer got an empty parameter list: give at least one param group with parameters.", nameof(Groups));
        }

        if (WorldSize < 1)
        {
            throw new ArgumentException($"Invalid world size {WorldSize}: expected at least 1 worker.", nameof(WorldSize));
        }

        if (MaxShardElements < 1)
        {
            throw new ArgumentException($"Invalid maximum shard size {MaxShardElements}: expected at least 1 element.", nameof(MaxShardElements));
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int g = 0; g < Groups.Count; g++)
        {
            if (Groups[g].Parameters.Count == 0)
            {
                throw new ArgumentException($"Param group {g} has no parameters: give each group at least one parameter.", nameof(Groups));
            }

            foreach (var parameter in Groups[g].Parameters)
            {
                _ = parameter.NumElements;
                if (parameter.Name is not null && !names.Add(parameter.Name))
                {
                    throw new ArgumentException(
                        $"Parameter name '{parameter.Name}' appears twice: some parameters appear in more than one parameter group, or two parameters share a name.",
                        nameof(Groups));
                }
            }
        }

        var defaults = algorithm.BuildDefaults(DefaultOptions);
        var groups = new List<OrderedDictionary<string, object?>>();
        for (int g = 0; g < Groups.Count; g++)
        {
            groups.Add(algorithm.BuildGroup(Groups[g].Options, defaults, g));
        }

        return (algorithm, defaults, groups);
    }
}
