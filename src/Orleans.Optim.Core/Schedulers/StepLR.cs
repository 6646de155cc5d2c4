using static Orleans.Optim.Schedulers.PythonArithmetic;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// Torch's <c>StepLR</c>: multiplies each group's learning rate by <c>gamma</c> every <c>step_size</c> steps.
/// </summary>
public sealed class StepLR : GroupLRScheduler
{
    private object _stepSize;
    private object _gamma;

    /// <summary>Creates the scheduler as <c>StepLR(optimizer, step_size, gamma=0.1, last_epoch=-1, verbose=False)</c> and takes its initial step.</summary>
    /// <exception cref="InvalidSchedulerArgumentException">An argument is invalid, or a group lacks <c>lr</c>. Nothing was changed.</exception>
    public StepLR(OptimizerParamGroups optimizer, long stepSize, double gamma = 0.1, long lastEpoch = -1, bool verbose = false)
        : this(optimizer, SchedulerArguments.Of(nameof(StepLR), ("step_size", stepSize), ("gamma", gamma), ("last_epoch", lastEpoch), ("verbose", verbose)))
    {
    }

    internal StepLR(OptimizerParamGroups optimizer, SchedulerArguments arguments)
        : base(optimizer)
    {
        _stepSize = arguments.NonZeroNumber("step_size", "raises ZeroDivisionError at the second step");
        _gamma = arguments.Number("gamma");
        Initialize(arguments.Int("last_epoch"), arguments.Flag("verbose"));
    }

    /// <inheritdoc/>
    public override string Name => nameof(StepLR);

    /// <summary>Torch's <c>step_size</c>: the period of the decay in steps, a Python int or float.</summary>
    public object StepSize => _stepSize;

    /// <summary>Torch's <c>gamma</c>: the factor of each decay, a Python int or float.</summary>
    public object Gamma => _gamma;

    private protected override IReadOnlyList<string> HyperparameterKeys => ["step_size", "gamma"];

    private protected override object? HyperparameterValue(string key) => key == "step_size" ? _stepSize : _gamma;

    private protected override Action PrepareHyperparameterLoad(StateDictReader reader)
    {
        object stepSize = reader.NonZeroNumber("step_size");
        object gamma = reader.Number("gamma");
        return () => (_stepSize, _gamma) = (stepSize, gamma);
    }

    private protected override ScheduledValues ComputeLr(long lastEpoch, long stepCount)
    {
        if (lastEpoch == 0 || !NumberEquals(Modulo(lastEpoch, _stepSize), 0L))
        {
            return CurrentLrs();
        }

        return MapGroups(i => Multiply(GroupNumber(i, "lr"), _gamma));
    }

    private protected override ScheduledValues ComputeClosedFormLr(long lastEpoch) =>
        MapBaseLrsOnly(baseLr => Multiply(baseLr, Power(_gamma, FloorDivide(lastEpoch, _stepSize))));
}
