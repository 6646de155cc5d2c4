using static Orleans.Optim.Schedulers.PythonArithmetic;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// Torch's <c>CosineAnnealingLR</c>: anneals each group's learning rate from its initial value to <c>eta_min</c>
/// along a cosine over <c>T_max</c> steps, then back up, and so on.
/// </summary>
/// <remarks>
/// Like torch 1.13, each step computes the new rate from the group's current one with the recursive form of
/// <c>get_lr()</c>, not the closed form. Its values differ from the closed form in the last bits.
/// </remarks>
public sealed class CosineAnnealingLR : GroupLRScheduler
{
    private object _tMax;
    private object _etaMin;

    /// <summary>
    /// Creates the scheduler as <c>CosineAnnealingLR(optimizer, T_max, eta_min=0, last_epoch=-1, verbose=False)</c>
    /// and takes its initial step.
    /// </summary>
    /// <param name="optimizer">The param groups.</param>
    /// <param name="tMax">Torch's <c>T_max</c>: the number of steps from the initial rate down to <c>eta_min</c>.</param>
    /// <param name="etaMin">The minimum rate, or null for torch's default, the int 0.</param>
    /// <param name="lastEpoch">Torch's <c>last_epoch</c>: -1 to start, or the epoch to resume from.</param>
    /// <param name="verbose">Torch's <c>verbose</c>, kept for the state dict only.</param>
    /// <exception cref="InvalidSchedulerArgumentException">An argument is invalid, or a group lacks <c>lr</c>. Nothing was changed.</exception>
    public CosineAnnealingLR(OptimizerParamGroups optimizer, long tMax, double? etaMin = null, long lastEpoch = -1, bool verbose = false)
        : this(optimizer, SchedulerArguments.Of(
            nameof(CosineAnnealingLR), ("T_max", tMax), ("eta_min", etaMin is { } value ? (object)value : 0L), ("last_epoch", lastEpoch), ("verbose", verbose)))
    {
    }

    internal CosineAnnealingLR(OptimizerParamGroups optimizer, SchedulerArguments arguments)
        : base(optimizer)
    {
        _tMax = arguments.NonZeroNumber("T_max", "raises ZeroDivisionError at the second step");
        _etaMin = arguments.Number("eta_min");
        Initialize(arguments.Int("last_epoch"), arguments.Flag("verbose"));
    }

    /// <inheritdoc/>
    public override string Name => nameof(CosineAnnealingLR);

    /// <summary>Torch's <c>T_max</c>, a Python int or float.</summary>
    public object TMax => _tMax;

    /// <summary>Torch's <c>eta_min</c>, a Python int or float.</summary>
    public object EtaMin => _etaMin;

    private protected override IReadOnlyList<string> HyperparameterKeys => ["T_max", "eta_min"];

    private protected override object? HyperparameterValue(string key) => key == "T_max" ? _tMax : _etaMin;

    private protected override Action PrepareHyperparameterLoad(StateDictReader reader)
    {
        object tMax = reader.NonZeroNumber("T_max");
        object etaMin = reader.Number("eta_min");
        return () => (_tMax, _etaMin) = (tMax, etaMin);
    }

    private protected override ScheduledValues ComputeLr(long lastEpoch, long stepCount)
    {
        if (lastEpoch == 0)
        {
            return CurrentLrs();
        }

        if (stepCount == 1 && lastEpoch > 0)
        {
            // A scheduler created with last_epoch > -1 starts from the closed form.
            // eta_min + (base_lr - eta_min) * (1 + cos(last_epoch * pi / T_max)) / 2
            return MapBaseLrs((baseLr, _) => Add(
                _etaMin,
                TrueDivide(Multiply(Subtract(baseLr, _etaMin), Add(1L, Cos(TrueDivide(Multiply(lastEpoch, Math.PI), _tMax)))), 2L)));
        }

        if (NumberEquals(Modulo(Subtract(Subtract(lastEpoch, 1L), _tMax), Multiply(2L, _tMax)), 0L))
        {
            // At the bottom of the cosine the recursion would divide by zero.
            // lr + (base_lr - eta_min) * (1 - cos(pi / T_max)) / 2
            return MapBaseLrs((baseLr, i) => Add(
                GroupNumber(i, "lr"),
                TrueDivide(Multiply(Subtract(baseLr, _etaMin), Subtract(1L, Cos(TrueDivide(Math.PI, _tMax)))), 2L)));
        }

        // (1 + cos(pi * last_epoch / T_max)) / (1 + cos(pi * (last_epoch - 1) / T_max)) * (lr - eta_min) + eta_min
        return MapGroups(i =>
        {
            object numerator = Add(1L, Cos(TrueDivide(Multiply(Math.PI, lastEpoch), _tMax)));
            object denominator = Add(1L, Cos(TrueDivide(Multiply(Math.PI, Subtract(lastEpoch, 1L)), _tMax)));
            return Add(Multiply(TrueDivide(numerator, denominator), Subtract(GroupNumber(i, "lr"), _etaMin)), _etaMin);
        });
    }

    private protected override ScheduledValues ComputeClosedFormLr(long lastEpoch) =>
        MapBaseLrsOnly(baseLr => Add(
            _etaMin,
            TrueDivide(Multiply(Subtract(baseLr, _etaMin), Add(1L, Cos(TrueDivide(Multiply(Math.PI, lastEpoch), _tMax)))), 2L)));
}
