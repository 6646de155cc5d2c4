using Orleans.Optim.Algorithms;

namespace Orleans.Optim.Engine;

/// <summary>
/// One shard's piece of a parameter: the fp32 master values of a slice and the optimizer state of that slice,
/// stepped as torch steps the whole parameter.
/// </summary>
public sealed class ParameterSlice
{
    /// <summary>Creates a slice with initial values and no state yet (unless the algorithm creates it eagerly).</summary>
    /// <param name="algorithm">The optimizer algorithm.</param>
    /// <param name="options">The hyperparameters of the parameter's group.</param>
    /// <param name="paramId">Param ID of the parameter.</param>
    /// <param name="values">Initial master values of the slice; the slice takes ownership.</param>
    /// <param name="defaults">Torch's <c>optimizer.defaults</c>, which an algorithm that creates state eagerly reads.</param>
    /// <exception cref="InvalidHyperparameterException">A value in <paramref name="defaults"/> that the initial state needs is invalid.</exception>
    public ParameterSlice(OptimizerAlgorithm algorithm, AlgorithmOptions options, long paramId, float[] values, IReadOnlyDictionary<string, object?> defaults)
    {
        Algorithm = algorithm;
        Options = options;
        ParamId = paramId;
        Values = values;
        if (algorithm.CreatesStateEagerly)
        {
            State = algorithm.CreateInitialState(defaults, options, values.Length);
            OrderKey = new StateOrderKey(0, paramId);
        }
    }

    /// <summary>The optimizer algorithm.</summary>
    public OptimizerAlgorithm Algorithm { get; }

    /// <summary>Param ID of the parameter the slice belongs to.</summary>
    public long ParamId { get; }

    /// <summary>Hyperparameters of the parameter's group, as of the next step.</summary>
    public AlgorithmOptions Options { get; private set; }

    /// <summary>The fp32 master values of the slice.</summary>
    public float[] Values { get; private set; }

    /// <summary>The slice's optimizer state, or <see langword="null"/> before the parameter's first gradient.</summary>
    public SliceState? State { get; private set; }

    /// <summary>Where the parameter's state sits in torch's state order; meaningful when <see cref="State"/> is set.</summary>
    public StateOrderKey OrderKey { get; private set; }

    /// <summary>Replaces the hyperparameters from the next step on.</summary>
    public void SetOptions(AlgorithmOptions options) => Options = options;

    /// <summary>
    /// Applies step <paramref name="globalStep"/> with the reduced gradient, or skips the slice when the parameter has
    /// no gradient, as torch skips a parameter whose <c>.grad</c> is <c>None</c>.
    /// </summary>
    /// <param name="gradient">The reduced gradient of the slice; ignored without <paramref name="hasGradient"/>.</param>
    /// <param name="hasGradient">Whether the parameter has a gradient at this step.</param>
    /// <param name="globalStep">The optimizer's step number, counted from 1.</param>
    /// <param name="path">Which kernel implementation runs.</param>
    /// <exception cref="ArgumentException">The gradient's length differs from the slice's.</exception>
    public void Step(ReadOnlySpan<float> gradient, bool hasGradient, long globalStep, KernelPath path) =>
        Step(gradient, hasGradient, globalStep, path, KernelParallelism.None);

    /// <summary>
    /// Applies step <paramref name="globalStep"/> as <see cref="Step(ReadOnlySpan{float}, bool, long, KernelPath)"/>
    /// does, with the update split over up to <see cref="KernelParallelism.MaxThreads"/> threads where the algorithm
    /// supports it. The bits are the same as on one thread.
    /// </summary>
    /// <param name="gradient">The reduced gradient of the slice; ignored without <paramref name="hasGradient"/>.</param>
    /// <param name="hasGradient">Whether the parameter has a gradient at this step.</param>
    /// <param name="globalStep">The optimizer's step number, counted from 1.</param>
    /// <param name="path">Which kernel implementation runs.</param>
    /// <param name="parallelism">How many threads the update may use.</param>
    /// <exception cref="ArgumentException">The gradient's length differs from the slice's.</exception>
    public void Step(ReadOnlySpan<float> gradient, bool hasGradient, long globalStep, KernelPath path, KernelParallelism parallelism)
    {
        if (!hasGradient)
        {
            return;
        }

        if (gradient.Length != Values.Length)
        {
            throw new ArgumentException(
                $"Gradient for param {ParamId} has {gradient.Length} elements, but the slice has {Values.Length}.", nameof(gradient));
        }

        if (State is null)
        {
            State = Algorithm.CreateState(Options, Values.Length);
            OrderKey = new StateOrderKey(globalStep, ParamId);
        }

        Algorithm.Step(Options, State, Values, gradient, path, parallelism);
    }

    /// <summary>Replaces values, state and options at once, as a committed <c>load_state_dict</c> or restore does.</summary>
    public void Replace(float[]? values, SliceState? state, StateOrderKey orderKey, AlgorithmOptions options)
    {
        if (values is not null)
        {
            Values = values;
        }

        State = state;
        OrderKey = orderKey;
        Options = options;
    }
}
