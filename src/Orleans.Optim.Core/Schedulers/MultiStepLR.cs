using Orleans.Optim.Python;
using static Orleans.Optim.Schedulers.PythonArithmetic;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// Torch's <c>MultiStepLR</c>: multiplies each group's learning rate by <c>gamma</c> at each milestone, once per
/// occurrence of the milestone in the list.
/// </summary>
/// <remarks>
/// Torch stores the milestones as <c>collections.Counter(milestones)</c>: each distinct epoch with its number of
/// occurrences, in order of first occurrence. Its state dict contains that <see cref="PythonCounter"/>.
/// </remarks>
public sealed class MultiStepLR : GroupLRScheduler
{
    private PythonCounter _milestones;
    private object _gamma;

    /// <summary>Creates the scheduler as <c>MultiStepLR(optimizer, milestones, gamma=0.1, last_epoch=-1, verbose=False)</c> and takes its initial step.</summary>
    /// <exception cref="InvalidSchedulerArgumentException">An argument is invalid, or a group lacks <c>lr</c>. Nothing was changed.</exception>
    public MultiStepLR(OptimizerParamGroups optimizer, IEnumerable<long> milestones, double gamma = 0.1, long lastEpoch = -1, bool verbose = false)
        : this(optimizer, SchedulerArguments.Of(
            nameof(MultiStepLR),
            ("milestones", (milestones ?? throw new ArgumentNullException(nameof(milestones))).Select(m => (object?)m).ToList()),
            ("gamma", gamma),
            ("last_epoch", lastEpoch),
            ("verbose", verbose)))
    {
    }

    internal MultiStepLR(OptimizerParamGroups optimizer, SchedulerArguments arguments)
        : base(optimizer)
    {
        object? milestones = arguments.Raw("milestones");
        IReadOnlyList<object?>? items = milestones switch
        {
            List<object?> list => list,
            object?[] tuple => tuple,
            _ => null,
        };
        if (items is null || items.Any(item => item is not (long or int)))
        {
            throw arguments.Invalid("milestones", $"expected a list of int epoch indices, found {SchedulerValues.Describe(milestones)}");
        }

        _milestones = PythonCounter.FromElements(items.Select(item => (object)Convert.ToInt64(item)));
        _gamma = arguments.Number("gamma");
        Initialize(arguments.Int("last_epoch"), arguments.Flag("verbose"));
    }

    /// <inheritdoc/>
    public override string Name => nameof(MultiStepLR);

    /// <summary>Torch's <c>milestones</c>: each epoch with the number of times it was given.</summary>
    public IReadOnlyDictionary<long, long> Milestones => _milestones.ToDictionary(pair => (long)pair.Key, pair => (long)pair.Value!);

    /// <summary>Torch's <c>gamma</c>: the factor of each decay, a Python int or float.</summary>
    public object Gamma => _gamma;

    private protected override IReadOnlyList<string> HyperparameterKeys => ["milestones", "gamma"];

    private protected override object? HyperparameterValue(string key) => key == "milestones" ? new PythonCounter(_milestones) : _gamma;

    private protected override Action PrepareHyperparameterLoad(StateDictReader reader)
    {
        if (reader.Value("milestones") is not PythonCounter counter || counter.Any(pair => pair.Key is not long || pair.Value is not long))
        {
            throw reader.Invalid("milestones", "a collections.Counter of int epochs to int counts");
        }

        var milestones = new PythonCounter(counter);
        object gamma = reader.Number("gamma");
        return () => (_milestones, _gamma) = (milestones, gamma);
    }

    private protected override ScheduledValues ComputeLr(long lastEpoch, long stepCount)
    {
        if (!_milestones.TryGetValue(lastEpoch, out object? count))
        {
            return CurrentLrs();
        }

        object factor = Power(_gamma, count!);
        return MapGroups(i => Multiply(GroupNumber(i, "lr"), factor));
    }

    private protected override ScheduledValues ComputeClosedFormLr(long lastEpoch)
    {
        // sorted(self.milestones.elements()): each epoch repeated by its count, where counts below 1 give none.
        var elements = _milestones
            .SelectMany(pair => Enumerable.Repeat((long)pair.Key, (int)Math.Clamp((long)pair.Value!, 0, int.MaxValue)))
            .Order()
            .ToList();
        object factor = Power(_gamma, (long)SchedulerValues.BisectRight(elements, lastEpoch));
        return MapBaseLrsOnly(baseLr => Multiply(baseLr, factor));
    }
}
