using static Orleans.Optim.Schedulers.PythonArithmetic;

namespace Orleans.Optim.Schedulers;

/// <summary>Torch's <c>ExponentialLR</c>: multiplies each group's learning rate by <c>gamma</c> at every step.</summary>
public sealed class ExponentialLR : GroupLRScheduler
{
    private object _gamma;

    /// <summary>Creates the scheduler as <c>ExponentialLR(optimizer, gamma, last_epoch=-1, verbose=False)</c> and takes its initial step.</summary>
    /// <exception cref="InvalidSchedulerArgumentException">An argument is invalid, or a group lacks <c>lr</c>. Nothing was changed.</exception>
    public ExponentialLR(OptimizerParamGroups optimizer, double gamma, long lastEpoch = -1, bool verbose = false)
        : this(optimizer, SchedulerArguments.Of(nameof(ExponentialLR), ("gamma", gamma), ("last_epoch", lastEpoch), ("verbose", verbose)))
    {
    }

    internal ExponentialLR(OptimizerParamGroups optimizer, SchedulerArguments arguments)
        : base(optimizer)
    {
        _gamma = arguments.Number("gamma");
        Initialize(arguments.Int("last_epoch"), arguments.Flag("verbose"));
    }

    /// <inheritdoc/>
    public override string Name => nameof(ExponentialLR);

    /// <summary>Torch's <c>gamma</c>: the factor of each step, a Python int or float.</summary>
    public object Gamma => _gamma;

    private protected override IReadOnlyList<string> HyperparameterKeys => ["gamma"];

    private protected override object? HyperparameterValue(string key) => _gamma;

    private protected override Action PrepareHyperparameterLoad(StateDictReader reader)
    {
        object gamma = reader.Number("gamma");
        return () => _gamma = gamma;
    }

    private protected override ScheduledValues ComputeLr(long lastEpoch, long stepCount) =>
        lastEpoch == 0 ? CurrentLrs() : MapGroups(i => Multiply(GroupNumber(i, "lr"), _gamma));

    private protected override ScheduledValues ComputeClosedFormLr(long lastEpoch) =>
        MapBaseLrsOnly(baseLr => Multiply(baseLr, Power(_gamma, lastEpoch)));
}
