using Orleans.Optim.Python;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// Torch's <c>SequentialLR</c>: runs one scheduler after another, switching at the milestones, such as a
/// <see cref="LinearLR"/> warmup followed by a <see cref="CosineAnnealingLR"/> decay.
/// </summary>
/// <remarks>
/// <para>
/// Create the schedulers against the same <see cref="OptimizerParamGroups"/> first, in order. Each of them takes its
/// own initial step then, as in torch. The constructor then behaves as torch 1.13's: it resets every group's
/// <c>lr</c> to <c>initial_lr</c>, subtracts 1 from every scheduler's <c>last_epoch</c>, and repeats the initial
/// step of the first scheduler only. So the later schedulers keep the <c>_last_lr</c> and <c>_step_count</c> of
/// their own construction.
/// </para>
/// <para>
/// At a milestone, torch calls the next scheduler's deprecated <c>step(0)</c>: its <c>last_epoch</c> becomes 0 and
/// its learning rate comes from its closed form (<c>_get_closed_form_lr</c>) where the class has one, so the new
/// scheduler starts from the groups' <c>initial_lr</c>, not from the rate the previous one reached. The state dict
/// has no <c>base_lrs</c>, <c>_step_count</c> or <c>verbose</c>, its <c>_last_lr</c> is the same list as that of
/// the scheduler that stepped last, and <c>_schedulers</c> contains the state dict of each scheduler.
/// </para>
/// </remarks>
public sealed class SequentialLR : LRScheduler
{
    private readonly List<GroupLRScheduler> _schedulers;
    private List<long> _milestones;

    // Torch keeps the milestones object it was given, so a tuple stays a tuple in the state dict.
    private bool _milestonesAreTuple;
    private long _lastEpoch;
    private List<object?> _lastLr;

    /// <summary>
    /// Creates the scheduler as <c>SequentialLR(optimizer, schedulers, milestones, last_epoch=-1, verbose=False)</c>
    /// and repeats the initial step of the first scheduler.
    /// </summary>
    /// <param name="optimizer">The param groups, the same instance that every scheduler was created with.</param>
    /// <param name="schedulers">The schedulers in order of use.</param>
    /// <param name="milestones">The epochs at which the next scheduler takes over, one fewer than the schedulers, in increasing order.</param>
    /// <param name="lastEpoch">Torch's <c>last_epoch</c>.</param>
    /// <param name="verbose">Torch's <c>verbose</c>, which torch's <c>SequentialLR</c> ignores.</param>
    /// <exception cref="InvalidSchedulerArgumentException">An argument is invalid. Nothing was changed.</exception>
    public SequentialLR(OptimizerParamGroups optimizer, IReadOnlyList<LRScheduler> schedulers, IReadOnlyList<long> milestones, long lastEpoch = -1, bool verbose = false)
        : this(optimizer, SchedulerArguments.Of(
            nameof(SequentialLR),
            ("schedulers", (schedulers ?? throw new ArgumentNullException(nameof(schedulers))).Select(s => (object?)s).ToList()),
            ("milestones", (milestones ?? throw new ArgumentNullException(nameof(milestones))).Select(m => (object?)m).ToList()),
            ("last_epoch", lastEpoch),
            ("verbose", verbose)))
    {
    }

    internal SequentialLR(OptimizerParamGroups optimizer, SchedulerArguments arguments)
        : base(optimizer)
    {
        _schedulers = ReadSchedulers(optimizer, arguments);
        (_milestones, _milestonesAreTuple) = ReadMilestones(arguments.Raw("milestones"))
            ?? throw arguments.Invalid("milestones", $"expected a list of int epochs in increasing order, found {SchedulerValues.Describe(arguments.Raw("milestones"))}");
        if (_milestones.Count != _schedulers.Count - 1)
        {
            throw arguments.TorchError(
                "milestones",
                "Sequential Schedulers expects number of schedulers provided to be one more than the number of milestone points, " +
                $"but got number of schedulers {_schedulers.Count} and the number of milestones to be equal to {_milestones.Count}",
                "Pass one milestone between each two schedulers");
        }

        long lastEpoch = arguments.Int("last_epoch");
        arguments.Flag("verbose");
        for (int i = 0; i < optimizer.ParamGroups.Count; i++)
        {
            if (SchedulerValues.AsFiniteNumber(optimizer.ParamGroups[i].GetValueOrDefault("initial_lr")) is null)
            {
                throw new InvalidSchedulerArgumentException(
                    $"SequentialLR: param_groups[{i}]['initial_lr'] is missing or not a number. Create the schedulers against these param groups before the SequentialLR.",
                    "optimizer");
            }
        }

        var groupSnapshot = optimizer.Snapshot();
        var schedulerSnapshots = _schedulers.Select(scheduler => scheduler.StateDict()).ToList();
        try
        {
            _lastEpoch = checked(lastEpoch + 1);
            foreach (var group in optimizer.ParamGroups)
            {
                group["lr"] = group["initial_lr"];
            }

            foreach (var scheduler in _schedulers)
            {
                scheduler.DecrementLastEpoch();
            }

            _schedulers[0].InitialStep();
            _lastLr = _schedulers[0].LastLrList;
        }
        catch (Exception error)
        {
            optimizer.Restore(groupSnapshot);
            for (int i = 0; i < _schedulers.Count; i++)
            {
                PrepareLoadOf(_schedulers[i], schedulerSnapshots[i], "snapshot")();
            }

            if (error is InvalidOperationException)
            {
                throw new InvalidSchedulerArgumentException($"SequentialLR: the initial step of the first scheduler failed: {error.Message}.", "schedulers", error);
            }

            throw;
        }
    }

    /// <inheritdoc/>
    public override string Name => nameof(SequentialLR);

    /// <summary>The schedulers in order of use.</summary>
    public IReadOnlyList<LRScheduler> Schedulers => _schedulers.AsReadOnly();

    /// <summary>The epochs at which the next scheduler takes over.</summary>
    public IReadOnlyList<long> Milestones => _milestones.AsReadOnly();

    /// <inheritdoc/>
    public override long LastEpoch => _lastEpoch;

    /// <inheritdoc/>
    public override IReadOnlyList<object?> LastLr => _lastLr.AsReadOnly();

    /// <inheritdoc/>
    public override void Step()
    {
        long lastEpoch = checked(_lastEpoch + 1);
        int index = SchedulerValues.BisectRight(_milestones, lastEpoch);
        var scheduler = _schedulers[index];
        if (index > 0 && _milestones[index - 1] == lastEpoch)
        {
            scheduler.StepToEpoch(0);
        }
        else
        {
            scheduler.Step();
        }

        _lastEpoch = lastEpoch;
        _lastLr = scheduler.LastLrList;
    }

    /// <inheritdoc/>
    public override OrderedDictionary<object, object?> StateDict()
    {
        var schedulerStates = _schedulers.Select(scheduler => scheduler.StateDict()).ToList();
        object? lastLr = new List<object?>(_lastLr);
        for (int i = 0; i < _schedulers.Count; i++)
        {
            if (ReferenceEquals(_lastLr, _schedulers[i].LastLrList))
            {
                lastLr = schedulerStates[i]["_last_lr"];
                break;
            }
        }

        object milestones = _milestonesAreTuple ? _milestones.Select(m => (object?)m).ToArray() : _milestones.Select(m => (object?)m).ToList();
        return new OrderedDictionary<object, object?>
        {
            ["_milestones"] = milestones,
            ["last_epoch"] = _lastEpoch,
            ["_last_lr"] = lastLr,
            ["_schedulers"] = schedulerStates.Select(state => (object?)state).ToList(),
        };
    }

    private protected override Action PrepareLoad(OrderedDictionary<object, object?> stateDict, string path)
    {
        var reader = new StateDictReader(stateDict, path, Name, ["_milestones", "last_epoch", "_last_lr", "_schedulers"], []);
        var (milestones, milestonesAreTuple) = ReadMilestones(reader.Value("_milestones"))
            ?? throw reader.Invalid("_milestones", "a list of int epochs in increasing order");
        if (milestones.Count != _schedulers.Count - 1)
        {
            throw reader.Fail($"{reader.PathOf("_milestones")} has {milestones.Count} milestones, but this SequentialLR has {_schedulers.Count} schedulers and needs {_schedulers.Count - 1}");
        }

        long lastEpoch = reader.Int("last_epoch");
        var lastLr = reader.NumberList("_last_lr", Optimizer.ParamGroups.Count);
        if (reader.Value("_schedulers") is not List<object?> states || states.Any(state => state is not OrderedDictionary<object, object?>))
        {
            throw reader.Invalid("_schedulers", "a list of scheduler state dicts");
        }

        if (states.Count != _schedulers.Count)
        {
            throw reader.Fail($"{reader.PathOf("_schedulers")} has {states.Count} state dicts, but this SequentialLR has {_schedulers.Count} schedulers");
        }

        var loads = _schedulers
            .Select((scheduler, i) => PrepareLoadOf(scheduler, (OrderedDictionary<object, object?>)states[i]!, $"{reader.PathOf("_schedulers")}[{i}]"))
            .ToList();

        // A file saved by torch shares the _last_lr list with the scheduler that stepped last, and so does this loader.
        int sharedIndex = states.FindIndex(state => ReferenceEquals(((OrderedDictionary<object, object?>)state!)["_last_lr"], reader.Value("_last_lr")));
        return () =>
        {
            loads.ForEach(load => load());
            (_milestones, _milestonesAreTuple, _lastEpoch) = (milestones, milestonesAreTuple, lastEpoch);
            _lastLr = sharedIndex >= 0 ? _schedulers[sharedIndex].LastLrList : lastLr;
        };
    }

    private static List<GroupLRScheduler> ReadSchedulers(OptimizerParamGroups optimizer, SchedulerArguments arguments)
    {
        object? value = arguments.Raw("schedulers");
        IReadOnlyList<object?>? items = value switch
        {
            List<object?> list => list,
            object?[] tuple => tuple,
            _ => null,
        };
        if (items is null || items.Any(item => item is not LRScheduler))
        {
            throw arguments.Invalid("schedulers", $"expected a list of schedulers, found {SchedulerValues.Describe(value)}");
        }

        var schedulers = new List<GroupLRScheduler>();
        for (int i = 0; i < items.Count; i++)
        {
            var scheduler = (LRScheduler)items[i]!;
            if (!ReferenceEquals(scheduler.Optimizer, optimizer))
            {
                throw arguments.TorchError(
                    "schedulers",
                    "Sequential Schedulers expects all schedulers to belong to the same optimizer, but " +
                    $"got schedulers at index {i} to be different than the optimizer passed in",
                    "Create every scheduler with the same OptimizerParamGroups instance as the SequentialLR");
            }

            schedulers.Add(scheduler as GroupLRScheduler
                ?? throw arguments.Invalid(
                    "schedulers",
                    $"the scheduler at index {i} is a {scheduler.Name}, which cannot run inside a SequentialLR because torch 1.13 passes it an epoch at a milestone and {scheduler.Name}.step() takes none"));
        }

        return schedulers;
    }

    /// <summary>Reads milestones as a list or tuple of ints in increasing order, or returns null.</summary>
    private static (List<long> Milestones, bool IsTuple)? ReadMilestones(object? value)
    {
        IReadOnlyList<object?>? items = value switch
        {
            List<object?> list => list,
            object?[] tuple => tuple,
            _ => null,
        };
        if (items is null || items.Any(item => item is not (long or int)))
        {
            return null;
        }

        var milestones = items.Select(item => Convert.ToInt64(item)).ToList();
        for (int i = 1; i < milestones.Count; i++)
        {
            // Torch bisects the list, which needs it sorted. Two equal milestones skip a scheduler, as in torch.
            if (milestones[i] < milestones[i - 1])
            {
                return null;
            }
        }

        return (milestones, value is object?[]);
    }
}
