using Orleans.Optim.Python;

namespace Orleans.Optim.Algorithms;

/// <summary>
/// Typed hyperparameters of one param group, parsed by <see cref="OptimizerAlgorithm.ParseOptions"/>.
/// </summary>
public abstract record AlgorithmOptions;

/// <summary>
/// One torch.optim algorithm: its defaults, hyperparameter checks, per-parameter state and update kernel.
/// </summary>
/// <remarks>
/// The update is elementwise for every algorithm here, so a parameter split over several shards is updated slice by
/// slice with the same bits as torch updates the whole tensor. Scalars that torch keeps per parameter (such as
/// <c>step</c>) are held by every shard alike.
/// </remarks>
public abstract class OptimizerAlgorithm
{
    /// <summary>
    /// Marker for a default without a value, as torch's <c>torch.optim.optimizer.required</c> (SGD's <c>lr</c>).
    /// </summary>
    public static readonly object Required = new RequiredMarker();

    /// <summary>Torch's class name, such as <c>Adam</c>.</summary>
    public abstract string Name { get; }

    /// <summary>Torch's constructor defaults in torch's key order, with their Python types.</summary>
    public abstract IReadOnlyList<KeyValuePair<string, object?>> Defaults { get; }

    /// <summary>Whether torch creates every parameter's state in the constructor instead of at its first gradient.</summary>
    public virtual bool CreatesStateEagerly => false;

    /// <summary>
    /// Parses one param group's hyperparameters and runs torch's constructor checks on them.
    /// </summary>
    /// <param name="group">The group's hyperparameters.</param>
    /// <param name="groupIndex">The group's index, for messages.</param>
    /// <param name="checkRanges">
    /// Whether to run torch's range checks (such as <c>lr &gt;= 0</c>). Torch runs them only in the constructor, so
    /// values a scheduler writes later (OneCycleLR's three-phase schedule can reach a negative lr) skip them; types
    /// and finiteness are always checked.
    /// </param>
    /// <exception cref="InvalidHyperparameterException">A value is missing, has the wrong type or is out of range.</exception>
    public abstract AlgorithmOptions ParseOptions(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true);

    /// <summary>Returns the state entries torch keeps per parameter with these options, in torch's order.</summary>
    public abstract IReadOnlyList<StateEntrySpec> StateEntries(AlgorithmOptions options);

    /// <summary>Creates the state torch creates for a parameter, restricted to a slice of <paramref name="length"/> elements.</summary>
    public abstract SliceState CreateState(AlgorithmOptions options, int length);

    /// <summary>
    /// Creates the state torch's constructor creates for a parameter when <see cref="CreatesStateEagerly"/> is set,
    /// restricted to a slice of <paramref name="length"/> elements.
    /// </summary>
    /// <param name="defaults">
    /// Torch's <c>optimizer.defaults</c>. The constructor reads its own keyword arguments, so a value there can differ
    /// from the group's, as Adagrad's <c>initial_accumulator_value</c> does.
    /// </param>
    /// <param name="options">The hyperparameters of the parameter's group.</param>
    /// <param name="length">Number of elements of the slice.</param>
    /// <exception cref="InvalidHyperparameterException">A value in <paramref name="defaults"/> is missing or invalid.</exception>
    public virtual SliceState CreateInitialState(IReadOnlyDictionary<string, object?> defaults, AlgorithmOptions options, int length) =>
        CreateState(options, length);

    /// <summary>
    /// Applies one update to a slice of a parameter, as torch's single-tensor path does to the whole tensor (for
    /// <see cref="NAdam"/>, torch's foreach path).
    /// </summary>
    /// <param name="options">The group's hyperparameters at this step.</param>
    /// <param name="state">The slice's state, updated in place.</param>
    /// <param name="param">The slice's fp32 master values, updated in place.</param>
    /// <param name="grad">The slice's reduced gradient.</param>
    /// <param name="path">Which kernel implementation runs.</param>
    public abstract void Step(AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path);

    /// <summary>
    /// Applies one update to a slice as <see cref="Step(AlgorithmOptions, SliceState, Span{float}, ReadOnlySpan{float}, KernelPath)"/>
    /// does, split into chunks over up to <see cref="KernelParallelism.MaxThreads"/> threads. The bits are the same
    /// as on one thread.
    /// </summary>
    /// <remarks>
    /// Adam, AdamW and SGD split the update. The other algorithms run it on the calling thread, as this base
    /// implementation does.
    /// </remarks>
    /// <param name="options">The group's hyperparameters at this step.</param>
    /// <param name="state">The slice's state, updated in place.</param>
    /// <param name="param">The slice's fp32 master values, updated in place.</param>
    /// <param name="grad">The slice's reduced gradient.</param>
    /// <param name="path">Which kernel implementation runs.</param>
    /// <param name="parallelism">How many threads one update may use.</param>
    public virtual void Step(
        AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path, KernelParallelism parallelism)
    {
        // NOTE: only Adam, AdamW and SGD override this. The other eight algorithms have no chunked kernel yet and
        // ignore the parallelism.
        Step(options, state, param, grad, path);
    }

    /// <summary>
    /// Builds torch's <c>optimizer.defaults</c>: the algorithm's defaults in torch's key order, with the constructor's
    /// keyword arguments in place of their defaults.
    /// </summary>
    /// <exception cref="InvalidHyperparameterException">
    /// A keyword argument is not one of the algorithm's, or fails a check of <see cref="CheckDefaults"/>.
    /// </exception>
    public OrderedDictionary<string, object?> BuildDefaults(IEnumerable<KeyValuePair<string, object?>> keywordArguments)
    {
        var defaults = new OrderedDictionary<string, object?>(Defaults);
        foreach (var (key, value) in keywordArguments)
        {
            if (!defaults.ContainsKey(key))
            {
                throw new InvalidHyperparameterException(
                    $"{Name}.__init__() got an unexpected keyword argument '{key}'. Valid arguments are {string.Join(", ", defaults.Keys)}.",
                    key);
            }

            defaults[key] = value;
        }

        CheckDefaults(defaults);
        return defaults;
    }

    /// <summary>
    /// Builds one param group's options as torch's <c>add_param_group</c> does: the group's own keys in their order,
    /// then every default it lacks, in the defaults' order. Then runs the algorithm's checks on it.
    /// </summary>
    /// <exception cref="InvalidHyperparameterException">A required value is missing, or a check fails.</exception>
    public OrderedDictionary<string, object?> BuildGroup(
        IEnumerable<KeyValuePair<string, object?>> groupOptions,
        IReadOnlyDictionary<string, object?> defaults,
        int groupIndex)
    {
        var group = new OrderedDictionary<string, object?>();
        foreach (var (key, value) in groupOptions)
        {
            if (key == "params")
            {
                continue;
            }

            group[key] = value;
        }

        foreach (var (key, value) in defaults)
        {
            if (group.ContainsKey(key))
            {
                continue;
            }

            if (ReferenceEquals(value, Required))
            {
                throw new InvalidHyperparameterException(
                    $"parameter group didn't specify a value of required optimization parameter {key}: set param_groups[{groupIndex}]['{key}'] or pass {key}= to {Name}.",
                    $"param_groups[{groupIndex}]['{key}']");
            }

            group[key] = value;
        }

        ParseOptions(group, groupIndex);
        return group;
    }

    /// <summary>
    /// Adds the defaults a loaded group lacks, as torch's <c>__setstate__</c> does after <c>load_state_dict</c>.
    /// </summary>
    public void FillMissingDefaults(OrderedDictionary<string, object?> group, IReadOnlyDictionary<string, object?> defaults)
    {
        foreach (var (key, value) in defaults)
        {
            if (!group.ContainsKey(key) && !ReferenceEquals(value, Required))
            {
                group[key] = value;
            }
        }
    }

    /// <summary>
    /// Runs torch's constructor checks on the defaults that the algorithm reads from <c>optimizer.defaults</c> instead of
    /// a group. <see cref="ParseOptions"/> checks every group, so only such values need a check here.
    /// </summary>
    /// <exception cref="InvalidHyperparameterException">A value fails the check.</exception>
    protected virtual void CheckDefaults(IReadOnlyDictionary<string, object?> defaults)
    {
    }

    /// <summary>Creates the state of a parameter from <see cref="StateEntries"/>, with zeroed tensors and zero scalars.</summary>
    protected SliceState CreateZeroState(AlgorithmOptions options, int length) =>
        new(StateEntries(options).Select(spec => spec.Kind switch
        {
            StateValueKind.ParamTensor => StateEntry.Slice(spec.Name, new float[length]),
            StateValueKind.ScalarTensor => StateEntry.ScalarTensor(spec.Name, 0),
            StateValueKind.Int => StateEntry.Int(spec.Name, 0),
            StateValueKind.Float => StateEntry.Float(spec.Name, 0),
            _ => StateEntry.None(spec.Name),
        }));

    private sealed class RequiredMarker
    {
        public override string ToString() => "<required parameter>";
    }
}

/// <summary>
/// The algorithms this project implements, by torch class name.
/// </summary>
public static class OptimizerAlgorithms
{
    private static readonly Dictionary<string, OptimizerAlgorithm> s_byName = new OptimizerAlgorithm[]
    {
        new Sgd(),
        new Adam(),
        new AdamW(),
        new Adagrad(),
        new RMSprop(),
        new Adadelta(),
        new Adamax(),
        new NAdam(),
        new RAdam(),
        new Asgd(),
        new Rprop(),
    }.ToDictionary(algorithm => algorithm.Name, StringComparer.Ordinal);

    /// <summary>Torch class names of the implemented algorithms.</summary>
    public static IReadOnlyCollection<string> Names => s_byName.Keys;

    /// <summary>Returns the algorithm with torch's class name <paramref name="name"/>.</summary>
    /// <exception cref="NotSupportedException">No such algorithm is implemented.</exception>
    public static OptimizerAlgorithm Get(string name) =>
        TryGet(name, out var algorithm)
            ? algorithm
            : throw new NotSupportedException(
                $"Optimizer '{name}' is not supported. Supported optimizers: {string.Join(", ", s_byName.Keys)}. Names are torch class names and case-sensitive.");

    /// <summary>Finds the algorithm with torch's class name <paramref name="name"/>.</summary>
    public static bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out OptimizerAlgorithm? algorithm) =>
        s_byName.TryGetValue(name, out algorithm);
}
