using Orleans.Optim.Python;
using static Orleans.Optim.Schedulers.PythonArithmetic;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// Torch's <c>LinearLR</c>: scales each group's learning rate by a factor that moves linearly from
/// <c>start_factor</c> to <c>end_factor</c> over <c>total_iters</c> steps, often used as a warmup.
/// </summary>
public sealed class LinearLR : GroupLRScheduler
{
    private object _startFactor;
    private object _endFactor;
    private object _totalIters;

    /// <summary>
    /// Creates the scheduler as <c>LinearLR(optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1, verbose=False)</c>
    /// and takes its initial step.
    /// </summary>
    /// <exception cref="InvalidSchedulerArgumentException">An argument is invalid, or a group lacks <c>lr</c>. Nothing was changed.</exception>
    public LinearLR(OptimizerParamGroups optimizer, double startFactor = 1.0 / 3, double endFactor = 1.0, long totalIters = 5, long lastEpoch = -1, bool verbose = false)
        : this(optimizer, SchedulerArguments.Of(
            nameof(LinearLR), ("start_factor", startFactor), ("end_factor", endFactor), ("total_iters", totalIters), ("last_epoch", lastEpoch), ("verbose", verbose)))
    {
    }

    internal LinearLR(OptimizerParamGroups optimizer, SchedulerArguments arguments)
        : base(optimizer)
    {
        _startFactor = arguments.Number("start_factor");
        _endFactor = arguments.Number("end_factor");
        _totalIters = arguments.Number("total_iters");
        if (CheckFactors(_startFactor, _endFactor, _totalIters, out string argumentName) is { } error)
        {
            string fix = argumentName switch
            {
                "start_factor" when NumberEquals(_startFactor, 0L) => "Pass a small positive start_factor such as 1e-8",
                "start_factor" => "Pass a start_factor from 0 to 1",
                "end_factor" => "Pass an end_factor from 0 to 1",
                _ => "Pass a nonzero total_iters",
            };
            throw arguments.TorchError(argumentName, error, fix);
        }

        Initialize(arguments.Int("last_epoch"), arguments.Flag("verbose"));
    }

    /// <inheritdoc/>
    public override string Name => nameof(LinearLR);

    /// <summary>Torch's <c>start_factor</c>, a Python int or float.</summary>
    public object StartFactor => _startFactor;

    /// <summary>Torch's <c>end_factor</c>, a Python int or float.</summary>
    public object EndFactor => _endFactor;

    /// <summary>Torch's <c>total_iters</c>, a Python int or float.</summary>
    public object TotalIters => _totalIters;

    private protected override IReadOnlyList<string> HyperparameterKeys => ["start_factor", "end_factor", "total_iters"];

    private protected override object? HyperparameterValue(string key) => key switch
    {
        "start_factor" => _startFactor,
        "end_factor" => _endFactor,
        _ => _totalIters,
    };

    private protected override Action PrepareHyperparameterLoad(StateDictReader reader)
    {
        object startFactor = reader.Number("start_factor");
        object endFactor = reader.Number("end_factor");
        object totalIters = reader.Number("total_iters");
        if (CheckFactors(startFactor, endFactor, totalIters, out string key) is { } error)
        {
            throw reader.Fail($"{reader.PathOf(key)} is {PythonValues.Format(reader.Value(key))}: {error}");
        }

        return () => (_startFactor, _endFactor, _totalIters) = (startFactor, endFactor, totalIters);
    }

    private protected override ScheduledValues ComputeLr(long lastEpoch, long stepCount)
    {
        if (lastEpoch == 0)
        {
            return MapGroups(i => Multiply(GroupNumber(i, "lr"), _startFactor));
        }

        if (Compare(lastEpoch, _totalIters) > 0)
        {
            return CurrentLrs();
        }

        // lr * (1. + (end_factor - start_factor) / (total_iters * start_factor + (last_epoch - 1) * (end_factor - start_factor)))
        object span = Subtract(_endFactor, _startFactor);
        object factor = Add(1.0, TrueDivide(span, Add(Multiply(_totalIters, _startFactor), Multiply(Subtract(lastEpoch, 1L), span))));
        return MapGroups(i => Multiply(GroupNumber(i, "lr"), factor));
    }

    // base_lr * (start_factor + (end_factor - start_factor) * min(total_iters, last_epoch) / total_iters)
    private protected override ScheduledValues ComputeClosedFormLr(long lastEpoch) =>
        MapBaseLrsOnly(baseLr => Multiply(
            baseLr,
            Add(_startFactor, TrueDivide(Multiply(Subtract(_endFactor, _startFactor), Min(_totalIters, lastEpoch)), _totalIters))));

    /// <summary>Runs torch's constructor checks, and rejects the values for which torch's first step divides by zero.</summary>
    private static string? CheckFactors(object startFactor, object endFactor, object totalIters, out string argumentName)
    {
        argumentName = "start_factor";
        if (Compare(startFactor, 1L) > 0 || Compare(startFactor, 0L) < 0)
        {
            return "Starting multiplicative factor expected to be between 0 and 1";
        }

        if (NumberEquals(startFactor, 0L) && Compare(totalIters, 1L) >= 0)
        {
            return "start_factor=0 makes torch 1.13 divide by zero at the first step (total_iters * start_factor is 0)";
        }

        argumentName = "end_factor";
        if (Compare(endFactor, 1L) > 0 || Compare(endFactor, 0L) < 0)
        {
            return "Ending multiplicative factor expected to be between 0 and 1";
        }

        argumentName = "total_iters";
        return NumberEquals(totalIters, 0L) ? "total_iters=0 makes the closed form that SequentialLR uses divide by zero" : null;
    }
}
