using Orleans.Optim.Python;
using static Orleans.Optim.Schedulers.PythonArithmetic;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// Torch's <c>OneCycleLR</c>: the 1cycle policy, which anneals each group's learning rate from
/// <c>max_lr / div_factor</c> up to <c>max_lr</c> and then down to far below the start, and cycles the momentum
/// (SGD's <c>momentum</c> or the first of Adam's <c>betas</c>) the opposite way.
/// </summary>
/// <remarks>
/// <para>
/// Like torch 1.13, the constructor writes <c>initial_lr</c>, <c>max_lr</c> and <c>min_lr</c> into every group and,
/// with <c>cycle_momentum</c>, also <c>max_momentum</c>, <c>base_momentum</c> and the first momentum value.
/// Stepping past <c>total_steps</c> raises. The values come from the closed form of each phase, not from the
/// previous <c>lr</c>.
/// </para>
/// <para>
/// Torch's state dict stores the anneal function as <c>anneal_func</c>, a bound method of the scheduler, which
/// <see cref="PythonBoundMethod"/> represents.
/// </para>
/// </remarks>
public sealed class OneCycleLR : GroupLRScheduler
{
    private static readonly string[] PhaseKeys = ["end_step", "start_lr", "end_lr", "start_momentum", "end_momentum"];

    // The group keys that torch's phases name, the only strings a loaded phase may contain.
    private static readonly string[] PhaseGroupKeys = ["initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"];

    private long _totalSteps;
    private List<object?> _phases;
    private PythonBoundMethod _annealFunction;
    private bool _cycleMomentum;

    // Null while the scheduler has no use_beta1 attribute: torch sets it only with cycle_momentum.
    private bool? _useBeta1;

    /// <summary>Creates the scheduler with one <c>max_lr</c> for every group, as torch's <c>OneCycleLR(optimizer, max_lr, ...)</c>, and takes its initial step.</summary>
    /// <param name="optimizer">The param groups.</param>
    /// <param name="maxLr">The peak learning rate of every group.</param>
    /// <param name="totalSteps">Steps in the cycle, or null to use <paramref name="epochs"/> times <paramref name="stepsPerEpoch"/>.</param>
    /// <param name="epochs">Epochs in the cycle, used when <paramref name="totalSteps"/> is null.</param>
    /// <param name="stepsPerEpoch">Steps per epoch, used when <paramref name="totalSteps"/> is null.</param>
    /// <param name="pctStart">Fraction of the cycle spent increasing the learning rate.</param>
    /// <param name="annealStrategy"><c>cos</c> or <c>linear</c>.</param>
    /// <param name="cycleMomentum">Whether to cycle <c>momentum</c> or <c>betas[0]</c> between the two momentum values.</param>
    /// <param name="baseMomentum">The lowest momentum, reached at the peak learning rate.</param>
    /// <param name="maxMomentum">The highest momentum, at the start and the end.</param>
    /// <param name="divFactor">The initial learning rate is <c>max_lr / div_factor</c>.</param>
    /// <param name="finalDivFactor">The final learning rate is <c>initial_lr / final_div_factor</c>.</param>
    /// <param name="threePhase">Whether to anneal back to the initial rate before the final decay.</param>
    /// <param name="lastEpoch">Torch's <c>last_epoch</c>: -1 to start, or the step to resume from.</param>
    /// <param name="verbose">Torch's <c>verbose</c>, kept for the state dict only.</param>
    /// <exception cref="InvalidSchedulerArgumentException">An argument is invalid, or the groups lack a value. Nothing was changed.</exception>
    public OneCycleLR(
        OptimizerParamGroups optimizer,
        double maxLr,
        long? totalSteps = null,
        long? epochs = null,
        long? stepsPerEpoch = null,
        double pctStart = 0.3,
        string annealStrategy = "cos",
        bool cycleMomentum = true,
        double baseMomentum = 0.85,
        double maxMomentum = 0.95,
        double divFactor = 25.0,
        double finalDivFactor = 1e4,
        bool threePhase = false,
        long lastEpoch = -1,
        bool verbose = false)
        : this(optimizer, SchedulerArguments.Of(
            nameof(OneCycleLR),
            ("max_lr", maxLr),
            ("total_steps", totalSteps),
            ("epochs", epochs),
            ("steps_per_epoch", stepsPerEpoch),
            ("pct_start", pctStart),
            ("anneal_strategy", annealStrategy),
            ("cycle_momentum", cycleMomentum),
            ("base_momentum", baseMomentum),
            ("max_momentum", maxMomentum),
            ("div_factor", divFactor),
            ("final_div_factor", finalDivFactor),
            ("three_phase", threePhase),
            ("last_epoch", lastEpoch),
            ("verbose", verbose)))
    {
    }

    internal OneCycleLR(OptimizerParamGroups optimizer, SchedulerArguments arguments)
        : base(optimizer)
    {
        _totalSteps = ReadTotalSteps(arguments);
        object pctStart = arguments.Raw("pct_start") is double fraction && fraction >= 0 && fraction <= 1
            ? fraction
            : throw arguments.TorchError(
                "pct_start",
                $"Expected float between 0 and 1 pct_start, but got {PythonValues.Format(arguments.Raw("pct_start"))}",
                "Pass a float such as 0.3, because torch 1.13 rejects an int here");
        _phases = BuildPhases(pctStart, _totalSteps, arguments.Flag("three_phase"));
        _annealFunction = arguments.Raw("anneal_strategy") switch
        {
            "cos" => PythonBoundMethod.OneCycleAnnealingCos,
            "linear" => PythonBoundMethod.OneCycleAnnealingLinear,
            var other => throw arguments.TorchError(
                "anneal_strategy",
                $"anneal_strategy must by one of 'cos' or 'linear', instead got {PythonValues.Format(other)}",
                "Pass 'cos' or 'linear'"),
        };

        var maxLrs = FormatParam(arguments, "max_lr");
        object divFactor = arguments.NonZeroNumber("div_factor", "divides max_lr by it");
        object finalDivFactor = arguments.NonZeroNumber("final_div_factor", "divides initial_lr by it");
        _cycleMomentum = arguments.Flag("cycle_momentum");
        List<object>? maxMomentums = null;
        List<object>? baseMomentums = null;
        if (_cycleMomentum)
        {
            if (!optimizer.DefaultKeys.Contains("momentum") && !optimizer.DefaultKeys.Contains("betas"))
            {
                throw arguments.TorchError(
                    "cycle_momentum",
                    "optimizer must support momentum with `cycle_momentum` option enabled",
                    "Pass cycle_momentum=False for an optimizer without 'momentum' or 'betas' in its defaults");
            }

            _useBeta1 = optimizer.DefaultKeys.Contains("betas");
            maxMomentums = FormatParam(arguments, "max_momentum");
            baseMomentums = FormatParam(arguments, "base_momentum");
        }

        long lastEpoch = arguments.Int("last_epoch");
        bool verbose = arguments.Flag("verbose");
        List<List<KeyValuePair<string, object?>>>? newValues = null;
        try
        {
            newValues = lastEpoch == -1 ? PlanGroupValues(maxLrs, divFactor, finalDivFactor, maxMomentums, baseMomentums) : null;
        }
        catch (InvalidOperationException error)
        {
            throw new InvalidSchedulerArgumentException($"{Name}: {error.Message}.", "optimizer", error);
        }

        var snapshot = optimizer.Snapshot();
        try
        {
            for (int i = 0; newValues is not null && i < newValues.Count; i++)
            {
                foreach (var (key, value) in newValues[i])
                {
                    optimizer.ParamGroups[i][key] = value;
                }
            }

            Initialize(lastEpoch, verbose);
        }
        catch
        {
            optimizer.Restore(snapshot);
            throw;
        }
    }

    /// <inheritdoc/>
    public override string Name => nameof(OneCycleLR);

    /// <summary>Torch's <c>total_steps</c>: the number of steps in the cycle.</summary>
    public long TotalSteps => _totalSteps;

    /// <summary>Torch's <c>anneal_func</c>.</summary>
    public PythonBoundMethod AnnealFunction => _annealFunction;

    /// <summary>Torch's <c>cycle_momentum</c>.</summary>
    public bool CycleMomentum => _cycleMomentum;

    /// <summary>Torch's <c>use_beta1</c>: whether the momentum is <c>betas[0]</c>; null when the scheduler has no such attribute.</summary>
    public bool? UseBeta1 => _useBeta1;

    private protected override IReadOnlyList<string> HyperparameterKeys =>
        _useBeta1 is null
            ? ["total_steps", "_schedule_phases", "anneal_func", "cycle_momentum"]
            : ["total_steps", "_schedule_phases", "anneal_func", "cycle_momentum", "use_beta1"];

    private protected override IReadOnlyList<string> OptionalHyperparameterKeys => ["use_beta1"];

    private protected override bool HasClosedForm => false;

    private protected override object? HyperparameterValue(string key) => key switch
    {
        "total_steps" => _totalSteps,
        "_schedule_phases" => CopyPhases(_phases),
        "anneal_func" => _annealFunction,
        "cycle_momentum" => _cycleMomentum,
        _ => _useBeta1,
    };

    private protected override Action PrepareHyperparameterLoad(StateDictReader reader)
    {
        long totalSteps = reader.Int("total_steps");
        if (totalSteps <= 0)
        {
            throw reader.Invalid("total_steps", "a positive int");
        }

        var phases = ReadPhases(reader);
        var annealFunction = reader.Value("anneal_func") as PythonBoundMethod;
        if (annealFunction is null || !PythonBoundMethod.Known.Contains(annealFunction))
        {
            throw reader.Invalid("anneal_func", "the bound method OneCycleLR._annealing_cos or OneCycleLR._annealing_linear");
        }

        bool cycleMomentum = reader.Flag("cycle_momentum");
        bool? useBeta1 = reader.Has("use_beta1") ? reader.Flag("use_beta1") : _useBeta1;
        if (cycleMomentum && useBeta1 is null)
        {
            throw reader.Fail($"{reader.PathOf("cycle_momentum")} is True, but the state dict has no 'use_beta1' and neither has this scheduler");
        }

        bool optimizerHasBetas = Optimizer.DefaultKeys.Contains("betas");
        if (cycleMomentum && useBeta1 != optimizerHasBetas)
        {
            throw reader.Fail(
                $"{reader.PathOf("use_beta1")} is {PythonValues.Format(useBeta1)}, but the optimizer {(optimizerHasBetas ? "has" : "has no")} 'betas' in its defaults, " +
                "so the state dict comes from a OneCycleLR of another kind of optimizer");
        }

        return () => (_totalSteps, _phases, _annealFunction, _cycleMomentum, _useBeta1) = (totalSteps, phases, annealFunction, cycleMomentum, useBeta1);
    }

    private protected override ScheduledValues ComputeLr(long lastEpoch, long stepCount)
    {
        if (lastEpoch > _totalSteps)
        {
            throw new InvalidOperationException(
                $"Tried to step {lastEpoch + 1} times. The specified number of total steps is {_totalSteps}. " +
                "Create the OneCycleLR with more total_steps (or epochs and steps_per_epoch), or stop stepping it at the end of the cycle");
        }

        int groupCount = Optimizer.ParamGroups.Count;
        var lrs = new List<object>(groupCount);
        var momentumValues = new List<object>(groupCount);
        for (int i = 0; i < groupCount; i++)
        {
            object startStep = 0L;
            for (int p = 0; p < _phases.Count; p++)
            {
                var phase = (OrderedDictionary<object, object?>)_phases[p]!;
                object endStep = phase["end_step"]!;
                if (Compare(lastEpoch, endStep) <= 0 || p == _phases.Count - 1)
                {
                    double pct = TrueDivide(Subtract(lastEpoch, startStep), Subtract(endStep, startStep));
                    lrs.Add(Anneal(GroupNumber(i, (string)phase["start_lr"]!), GroupNumber(i, (string)phase["end_lr"]!), pct));
                    if (_cycleMomentum)
                    {
                        object momentum = Anneal(GroupNumber(i, (string)phase["start_momentum"]!), GroupNumber(i, (string)phase["end_momentum"]!), pct);
                        momentumValues.Add(_useBeta1 == true ? WithFirstBeta(i, momentum) : momentum);
                    }

                    break;
                }

                startStep = endStep;
            }
        }

        return _cycleMomentum
            ? new ScheduledValues(lrs, _useBeta1 == true ? "betas" : "momentum", momentumValues)
            : new ScheduledValues(lrs);
    }

    /// <summary>Returns torch's <c>total_steps</c> from the arguments, with torch's checks and messages.</summary>
    private static long ReadTotalSteps(SchedulerArguments arguments)
    {
        object? totalSteps = arguments.Raw("total_steps");
        object? epochs = arguments.Raw("epochs");
        object? stepsPerEpoch = arguments.Raw("steps_per_epoch");
        if (totalSteps is null && epochs is null && stepsPerEpoch is null)
        {
            throw arguments.TorchError(
                "total_steps", "You must define either total_steps OR (epochs AND steps_per_epoch)", "Pass total_steps, or epochs and steps_per_epoch");
        }

        if (totalSteps is not null)
        {
            return PositiveInt(arguments, "total_steps", totalSteps);
        }

        long epochCount = PositiveInt(arguments, "epochs", epochs);
        long stepsPerEpochCount = PositiveInt(arguments, "steps_per_epoch", stepsPerEpoch);
        try
        {
            return checked(epochCount * stepsPerEpochCount);
        }
        catch (OverflowException)
        {
            throw arguments.Invalid("epochs", $"epochs * steps_per_epoch = {epochCount} * {stepsPerEpochCount} is outside the 64-bit range");
        }
    }

    private static long PositiveInt(SchedulerArguments arguments, string name, object? value) =>
        value is long number && number > 0
            ? number
            : throw arguments.TorchError(name, $"Expected positive integer {name}, but got {PythonValues.Format(value)}", $"Pass {name} as an int of at least 1");

    /// <summary>Builds torch's <c>_schedule_phases</c>.</summary>
    private static List<object?> BuildPhases(object pctStart, long totalSteps, bool threePhase)
    {
        // float(pct_start * total_steps) - 1
        object firstEnd = Subtract(ToDouble(Multiply(pctStart, totalSteps)), 1L);
        if (!threePhase)
        {
            return
            [
                Phase(firstEnd, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                Phase(totalSteps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ];
        }

        // float(2 * pct_start * total_steps) - 2
        object secondEnd = Subtract(ToDouble(Multiply(Multiply(2L, pctStart), totalSteps)), 2L);
        return
        [
            Phase(firstEnd, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
            Phase(secondEnd, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
            Phase(totalSteps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
        ];
    }

    private static OrderedDictionary<object, object?> Phase(object endStep, string startLr, string endLr, string startMomentum, string endMomentum) =>
        new()
        {
            ["end_step"] = endStep,
            ["start_lr"] = startLr,
            ["end_lr"] = endLr,
            ["start_momentum"] = startMomentum,
            ["end_momentum"] = endMomentum,
        };

    private static List<object?> CopyPhases(List<object?> phases) =>
        phases.Select(phase => (object?)new OrderedDictionary<object, object?>((OrderedDictionary<object, object?>)phase!)).ToList();

    private static List<object?> ReadPhases(StateDictReader reader)
    {
        if (reader.Value("_schedule_phases") is not List<object?> { Count: > 0 } list)
        {
            throw reader.Invalid("_schedule_phases", "a non-empty list of phase dicts");
        }

        foreach (object? item in list)
        {
            bool valid = item is OrderedDictionary<object, object?> phase
                && phase.GetType() == typeof(OrderedDictionary<object, object?>)
                && phase.Count == PhaseKeys.Length
                && PhaseKeys.All(key => phase.ContainsKey(key))
                && SchedulerValues.AsFiniteNumber(phase["end_step"]) is not null
                && PhaseKeys.Skip(1).All(key => phase[key] is string name && PhaseGroupKeys.Contains(name));
            if (!valid)
            {
                throw reader.Invalid(
                    "_schedule_phases",
                    $"a list of dicts with the keys {string.Join(", ", PhaseKeys)}, a number as end_step and group keys ({string.Join(", ", PhaseGroupKeys)}) as the others");
            }
        }

        return CopyPhases(list);
    }

    /// <summary>Returns torch's <c>_format_param</c>: one value per group from a number, or from a list or tuple of one per group.</summary>
    private List<object> FormatParam(SchedulerArguments arguments, string name)
    {
        object? value = arguments.Raw(name);
        int groupCount = Optimizer.ParamGroups.Count;
        IReadOnlyList<object?> values = value switch
        {
            List<object?> list => list,
            object?[] tuple => tuple,
            _ => Enumerable.Repeat(value, groupCount).ToList(),
        };
        if (values.Count != groupCount)
        {
            throw arguments.TorchError(name, $"expected {groupCount} values for {name}, got {values.Count}", "Pass one value per param group, or a single number");
        }

        return values
            .Select(item => SchedulerValues.AsFiniteNumber(item)
                ?? throw arguments.Invalid(name, $"expected a finite int or float per group, found {SchedulerValues.Describe(item)}"))
            .ToList();
    }

    /// <summary>Returns the values the constructor writes into each group, in torch's order, after checking that they can be computed.</summary>
    private List<List<KeyValuePair<string, object?>>> PlanGroupValues(
        List<object> maxLrs, object divFactor, object finalDivFactor, List<object>? maxMomentums, List<object>? baseMomentums)
    {
        var plan = new List<List<KeyValuePair<string, object?>>>();
        for (int i = 0; i < maxLrs.Count; i++)
        {
            double initialLr = TrueDivide(maxLrs[i], divFactor);
            var values = new List<KeyValuePair<string, object?>>
            {
                new("initial_lr", initialLr),
                new("max_lr", maxLrs[i]),
                new("min_lr", TrueDivide(initialLr, finalDivFactor)),
            };
            if (maxMomentums is not null && baseMomentums is not null)
            {
                values.Add(_useBeta1 == true ? new("betas", WithFirstBeta(i, maxMomentums[i])) : new("momentum", maxMomentums[i]));
                values.Add(new("max_momentum", maxMomentums[i]));
                values.Add(new("base_momentum", baseMomentums[i]));
            }

            plan.Add(values);
        }

        return plan;
    }

    /// <summary>Returns <c>(beta1, *group['betas'][1:])</c>, the tuple torch writes into the group.</summary>
    private object?[] WithFirstBeta(int groupIndex, object beta1)
    {
        object? betas = Optimizer.ParamGroups[groupIndex].GetValueOrDefault("betas");
        IReadOnlyList<object?> items = betas switch
        {
            object?[] tuple => tuple,
            List<object?> list => list,
            _ => throw new InvalidOperationException(
                $"param_groups[{groupIndex}]['betas'] is {SchedulerValues.Describe(betas)}, but OneCycleLR with cycle_momentum replaces betas[0] in a tuple. Set betas to a tuple such as (0.9, 0.999)"),
        };
        return [beta1, .. items.Skip(1)];
    }

    private object Anneal(object start, object end, double pct)
    {
        if (ReferenceEquals(_annealFunction, PythonBoundMethod.OneCycleAnnealingLinear))
        {
            // (end - start) * pct + start
            return Add(Multiply(Subtract(end, start), pct), start);
        }

        // cos_out = math.cos(math.pi * pct) + 1; end + (start - end) / 2.0 * cos_out
        object cosOut = Add(Cos(Multiply(Math.PI, pct)), 1L);
        return Add(end, Multiply(TrueDivide(Subtract(start, end), 2.0), cosOut));
    }
}
