using Orleans.Optim.Python;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// A scheduler that computes each param group's learning rate itself: torch 1.13's <c>_LRScheduler</c> with its
/// <c>base_lrs</c>, <c>last_epoch</c>, <c>_step_count</c>, <c>verbose</c> and <c>_last_lr</c>.
/// </summary>
/// <remarks>
/// Most subclasses compute the next <c>lr</c> from the group's current one in <c>get_lr()</c>, as torch does, so a
/// change to <c>lr</c> made outside the scheduler carries on into later steps, also as in torch.
/// </remarks>
public abstract class GroupLRScheduler : LRScheduler
{
    private static readonly string[] BaseKeys = ["base_lrs", "last_epoch", "verbose", "_step_count", "_get_lr_called_within_step", "_last_lr"];

    private List<object?> _baseLrs = [];
    private long _lastEpoch;
    private bool _verbose;
    private long _stepCount;
    private bool _getLrCalledWithinStep;
    private List<object?> _lastLr = [];

    // Torch's state_dict() lists the attributes in the order they were first set, and load_state_dict() appends
    // attributes that the scheduler did not have yet.
    private List<string> _keyOrder = [];

    private protected GroupLRScheduler(OptimizerParamGroups optimizer)
        : base(optimizer)
    {
    }

    /// <summary>Torch's <c>base_lrs</c>: each group's <c>initial_lr</c> when the scheduler was created or loaded.</summary>
    public IReadOnlyList<object?> BaseLrs => _baseLrs.AsReadOnly();

    /// <inheritdoc/>
    public override long LastEpoch => _lastEpoch;

    /// <summary>Torch's <c>_step_count</c>: the number of <see cref="LRScheduler.Step"/> calls, counting the constructor's.</summary>
    public long StepCount => _stepCount;

    /// <summary>Torch's <c>verbose</c>, kept for the state dict. This library prints nothing for it.</summary>
    public bool Verbose => _verbose;

    /// <inheritdoc/>
    public override IReadOnlyList<object?> LastLr => _lastLr.AsReadOnly();

    /// <summary>The list object of <c>_last_lr</c>, which <see cref="SequentialLR"/> shares as torch does.</summary>
    internal List<object?> LastLrList => _lastLr;

    /// <summary>Torch's attribute names of the subclass, in the order its constructor sets them.</summary>
    private protected abstract IReadOnlyList<string> HyperparameterKeys { get; }

    /// <summary>Attribute names that a loaded state dict may lack, such as OneCycleLR's <c>use_beta1</c>.</summary>
    private protected virtual IReadOnlyList<string> OptionalHyperparameterKeys => [];

    /// <summary>Whether torch's class has <c>_get_closed_form_lr()</c>, which <c>step(epoch)</c> uses.</summary>
    private protected virtual bool HasClosedForm => true;

    /// <inheritdoc/>
    public override void Step() => StepCore(null, _stepCount);

    /// <inheritdoc/>
    public override OrderedDictionary<object, object?> StateDict()
    {
        var state = new OrderedDictionary<object, object?>();
        foreach (string key in _keyOrder)
        {
            state[key] = key switch
            {
                "base_lrs" => new List<object?>(_baseLrs),
                "last_epoch" => _lastEpoch,
                "verbose" => _verbose,
                "_step_count" => _stepCount,
                "_get_lr_called_within_step" => _getLrCalledWithinStep,
                "_last_lr" => new List<object?>(_lastLr),
                _ => HyperparameterValue(key),
            };
        }

        return state;
    }

    /// <summary>
    /// Takes torch's deprecated <c>step(epoch)</c>: sets <c>last_epoch</c> to <paramref name="epoch"/> and uses the
    /// closed form where torch's class has one. <see cref="SequentialLR"/> calls it with 0 at each milestone.
    /// </summary>
    internal void StepToEpoch(long epoch) => StepCore(epoch, _stepCount);

    /// <summary>Torch's <c>_initial_step()</c>: resets <c>_step_count</c> to 0 and takes a step.</summary>
    internal void InitialStep() => StepCore(null, 0);

    /// <summary>Subtracts 1 from <c>last_epoch</c>, as <see cref="SequentialLR"/>'s constructor does to each scheduler.</summary>
    internal void DecrementLastEpoch() => _lastEpoch = checked(_lastEpoch - 1);

    /// <summary>Returns a copy of the value of a subclass attribute for the state dict.</summary>
    private protected abstract object? HyperparameterValue(string key);

    /// <summary>Checks the subclass attributes of a state dict and returns the action that sets them.</summary>
    private protected abstract Action PrepareHyperparameterLoad(StateDictReader reader);

    /// <summary>Torch's <c>get_lr()</c> at <paramref name="lastEpoch"/>, with <c>_step_count</c> already counting this step. Changes nothing.</summary>
    private protected abstract ScheduledValues ComputeLr(long lastEpoch, long stepCount);

    /// <summary>Torch's <c>_get_closed_form_lr()</c> at <paramref name="lastEpoch"/>. Changes nothing.</summary>
    private protected virtual ScheduledValues ComputeClosedFormLr(long lastEpoch) =>
        throw new InvalidOperationException($"Unreachable: {Name} has no closed form.");

    /// <summary>
    /// Runs the end of torch's <c>_LRScheduler.__init__</c>: adds <c>initial_lr</c> to each group, sets
    /// <c>base_lrs</c>, and takes the initial step. Subclasses call it last in their constructor, after setting their
    /// own attributes, as torch's subclasses call <c>super().__init__</c>.
    /// </summary>
    /// <exception cref="InvalidSchedulerArgumentException">A group lacks <c>lr</c>, or <c>initial_lr</c> when resuming. Nothing was changed.</exception>
    private protected void Initialize(long lastEpoch, bool verbose)
    {
        var groups = Optimizer.ParamGroups;
        for (int i = 0; i < groups.Count; i++)
        {
            string key = lastEpoch == -1 && !groups[i].ContainsKey("initial_lr") ? "lr" : "initial_lr";
            if (!groups[i].TryGetValue(key, out object? value))
            {
                throw new InvalidSchedulerArgumentException(
                    $"{Name}: param 'initial_lr' is not specified in param_groups[{i}] when resuming an optimizer. " +
                    $"Pass last_epoch=-1 to start a new schedule, or load the optimizer's state dict before creating the scheduler with last_epoch={lastEpoch}.",
                    "last_epoch");
            }

            if (SchedulerValues.AsFiniteNumber(value) is null)
            {
                throw new InvalidSchedulerArgumentException(
                    $"{Name}: param_groups[{i}]['{key}'] is {SchedulerValues.Describe(value)}, but a scheduler needs a finite int or float. Set a number.",
                    "optimizer");
            }
        }

        var snapshot = Optimizer.Snapshot();
        try
        {
            if (lastEpoch == -1)
            {
                foreach (var group in groups)
                {
                    group.TryAdd("initial_lr", group["lr"]);
                }
            }

            _baseLrs = groups.Select(group => SchedulerValues.AsFiniteNumber(group["initial_lr"])).ToList();
            _lastEpoch = lastEpoch;
            _verbose = verbose;
            _keyOrder = [.. HyperparameterKeys, .. BaseKeys];
            InitialStep();
        }
        catch (Exception error)
        {
            Optimizer.Restore(snapshot);
            if (error is InvalidOperationException)
            {
                throw new InvalidSchedulerArgumentException($"{Name}: the initial step failed: {error.Message}.", "optimizer", error);
            }

            throw;
        }
    }

    /// <summary>Reads a param group's value as a finite number for a computation.</summary>
    /// <exception cref="InvalidOperationException">The group lacks the key or its value is not a finite number.</exception>
    private protected object GroupNumber(int groupIndex, string key)
    {
        var group = Optimizer.ParamGroups[groupIndex];
        if (!group.TryGetValue(key, out object? value))
        {
            throw new InvalidOperationException(
                $"param_groups[{groupIndex}] has no '{key}', which {Name} reads (the group has {string.Join(", ", group.Keys)}). " +
                "Keep the keys the scheduler's constructor added, or load the optimizer's state dict");
        }

        return SchedulerValues.AsFiniteNumber(value)
            ?? throw new InvalidOperationException($"param_groups[{groupIndex}]['{key}'] is {SchedulerValues.Describe(value)}; {Name} needs a finite int or float");
    }

    /// <summary>Returns each group's current <c>lr</c>, the values of steps that change nothing.</summary>
    private protected ScheduledValues CurrentLrs() => MapGroups(i => GroupNumber(i, "lr"));

    /// <summary>Returns one learning rate per param group.</summary>
    private protected ScheduledValues MapGroups(Func<int, object> lrOfGroup) =>
        new(Enumerable.Range(0, Optimizer.ParamGroups.Count).Select(lrOfGroup).ToList());

    /// <summary>Returns one learning rate per base learning rate and param group, as Python's <c>zip(self.base_lrs, param_groups)</c>.</summary>
    private protected ScheduledValues MapBaseLrs(Func<object, int, object> lrOfBase) =>
        new(Enumerable.Range(0, Math.Min(_baseLrs.Count, Optimizer.ParamGroups.Count)).Select(i => lrOfBase(_baseLrs[i]!, i)).ToList());

    /// <summary>Returns one value per base learning rate, as Python's list comprehension over <c>self.base_lrs</c>.</summary>
    private protected ScheduledValues MapBaseLrsOnly(Func<object, object> lrOfBase) =>
        new(_baseLrs.Select(baseLr => lrOfBase(baseLr!)).ToList());

    private void StepCore(long? epoch, long stepCountBefore)
    {
        long stepCount = checked(stepCountBefore + 1);
        long lastEpoch = epoch ?? checked(_lastEpoch + 1);
        ScheduledValues values;
        try
        {
            values = epoch is not null && HasClosedForm ? ComputeClosedFormLr(lastEpoch) : ComputeLr(lastEpoch, stepCount);
        }
        catch (ArithmeticException error)
        {
            throw new InvalidOperationException(
                $"{Name}.step() failed at last_epoch {lastEpoch}: {error.Message}, where torch 1.13 raises ZeroDivisionError or OverflowError. " +
                "Check the scheduler's arguments and the param groups' values",
                error);
        }

        _stepCount = stepCount;
        _lastEpoch = lastEpoch;
        _getLrCalledWithinStep = false;

        var groups = Optimizer.ParamGroups;
        if (values.MomentumKey is { } momentumKey)
        {
            for (int i = 0; i < groups.Count && i < values.MomentumValues!.Count; i++)
            {
                groups[i][momentumKey] = values.MomentumValues[i];
            }
        }

        for (int i = 0; i < groups.Count && i < values.Lrs.Count; i++)
        {
            groups[i]["lr"] = values.Lrs[i];
        }

        _lastLr = groups.Select(group => group["lr"]).ToList();
    }

    private protected override Action PrepareLoad(OrderedDictionary<object, object?> stateDict, string path)
    {
        var reader = new StateDictReader(stateDict, path, Name, [.. HyperparameterKeys.Except(OptionalHyperparameterKeys), .. BaseKeys], OptionalHyperparameterKeys);
        int groupCount = Optimizer.ParamGroups.Count;
        var baseLrs = reader.NumberList("base_lrs", groupCount);
        long lastEpoch = reader.Int("last_epoch");
        bool verbose = reader.Flag("verbose");
        long stepCount = reader.Int("_step_count");
        bool getLrCalledWithinStep = reader.Flag("_get_lr_called_within_step");
        var lastLr = reader.NumberList("_last_lr", groupCount);
        var loadHyperparameters = PrepareHyperparameterLoad(reader);

        return () =>
        {
            loadHyperparameters();
            _baseLrs = baseLrs;
            _lastEpoch = lastEpoch;
            _verbose = verbose;
            _stepCount = stepCount;
            _getLrCalledWithinStep = getLrCalledWithinStep;
            _lastLr = lastLr;
            foreach (string key in stateDict.Keys.Cast<string>().Where(key => !_keyOrder.Contains(key)))
            {
                _keyOrder.Add(key);
            }
        };
    }

    /// <summary>
    /// The values of one step: a learning rate per group and, for OneCycleLR, the new value of <c>momentum</c> or
    /// <c>betas</c> per group, which is written first, as torch writes it inside <c>get_lr()</c>.
    /// </summary>
    private protected sealed record ScheduledValues(IReadOnlyList<object> Lrs, string? MomentumKey = null, IReadOnlyList<object>? MomentumValues = null);
}
