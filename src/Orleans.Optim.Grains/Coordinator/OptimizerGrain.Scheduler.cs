using Microsoft.Extensions.Logging;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Python;
using Orleans.Optim.Schedulers;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Coordinator;

/// <summary>
/// The coordinator's learning-rate scheduler: it runs on the coordinator so that every worker sees the same learning
/// rate at every step, and writes its changes to the param groups and the shards as a hyperparameter change does.
/// </summary>
internal sealed partial class OptimizerGrain
{
    private LRScheduler? _scheduler;

    // The groups the scheduler reads and writes, kept equal to the persisted groups by SyncSchedulerGroups.
    private List<OrderedDictionary<string, object?>>? _schedulerGroups;

    /// <inheritdoc/>
    public async Task<OptimizerDescription> SetScheduler(byte[]? spec)
    {
        var state = RequireExists();
        if (spec is null)
        {
            _scheduler = null;
            _schedulerGroups = null;
            state.Scheduler = null;
            state.SchedulerState = null;
            await persisted.WriteStateAsync();
            return Describe(state);
        }

        // Build against copies so that a rejected scheduler changes nothing.
        var groups = state.Groups.Select(PythonBinary.DecodeOptions).ToList();
        var scheduler = SchedulerFault(() => SchedulerSpec.FromPython(PythonBinary.Decode(spec)).Build(new OptimizerParamGroups(groups, DefaultKeys(state))));
        await ApplySchedulerGroupsAsync(groups);

        _scheduler = scheduler;
        _schedulerGroups = groups;
        state.Scheduler = spec;
        state.SchedulerState = PythonBinary.Encode(scheduler.StateDict());
        await persisted.WriteStateAsync();
        LogSchedulerSet(logger, Name, scheduler.Name);
        return Describe(state);
    }

    /// <inheritdoc/>
    public async Task<OptimizerDescription> SchedulerStep()
    {
        var state = RequireExists();
        var scheduler = RequireScheduler(state);

        // The scheduler changes nothing when its step fails, such as OneCycleLR stepped past its total steps.
        SchedulerFault(() =>
        {
            scheduler.Step();
            return scheduler;
        });
        await ApplySchedulerGroupsAsync(_schedulerGroups!);
        state.SchedulerState = PythonBinary.Encode(scheduler.StateDict());
        await persisted.WriteStateAsync();
        return Describe(state);
    }

    /// <inheritdoc/>
    public Task<(byte[]? Spec, byte[]? State)> GetScheduler()
    {
        var state = RequireExists();
        if (state.Scheduler is not null)
        {
            RequireScheduler(state);
        }

        return Task.FromResult((state.Scheduler, state.SchedulerState));
    }

    /// <inheritdoc/>
    public async Task LoadSchedulerState(byte[] stateDict)
    {
        var state = RequireExists();
        var scheduler = RequireScheduler(state);
        if (PythonBinary.Decode(stateDict) is not OrderedDictionary<object, object?> dict)
        {
            throw new OptimizerFaultException(OptimizerFault.StateDictMismatch, "A scheduler state dict must be a dict, as scheduler.state_dict() returns.");
        }

        try
        {
            scheduler.LoadStateDict(dict);
        }
        catch (StateDictException e)
        {
            throw new OptimizerFaultException(OptimizerFault.StateDictMismatch, e.Message);
        }

        state.SchedulerState = PythonBinary.Encode(scheduler.StateDict());
        await persisted.WriteStateAsync();
    }

    /// <summary>
    /// Copies the persisted groups into the scheduler's groups, in place, after something else changed them (a
    /// hyperparameter, a loaded state dict, an added group), as torch's scheduler reads <c>optimizer.param_groups</c> afresh at each step.
    /// </summary>
    private void SyncSchedulerGroups()
    {
        if (_schedulerGroups is null)
        {
            return;
        }

        var groups = persisted.State.Groups;
        for (int g = 0; g < groups.Length; g++)
        {
            var decoded = PythonBinary.DecodeOptions(groups[g]);
            if (g < _schedulerGroups.Count)
            {
                _schedulerGroups[g] = decoded;
            }
            else
            {
                _schedulerGroups.Add(decoded);
            }
        }
    }

    /// <summary>Checks the groups the scheduler wrote, sends the changed ones to their shards and stores them.</summary>
    private async Task ApplySchedulerGroupsAsync(IReadOnlyList<OrderedDictionary<string, object?>> groups)
    {
        var state = persisted.State;
        var algorithm = OptimizerAlgorithms.Get(state.Spec!.Algorithm);
        var encoded = new byte[groups.Count][];
        for (int g = 0; g < groups.Count; g++)
        {
            try
            {
                algorithm.ParseOptions(groups[g], g, checkRanges: false);
            }
            catch (InvalidHyperparameterException e)
            {
                throw new OptimizerFaultException(OptimizerFault.InvalidHyperparameter, $"The scheduler set an invalid value: {e.Reason}") { Path = e.ParamName };
            }

            encoded[g] = PythonBinary.EncodeOptions(groups[g]);
        }

        var layout = Layout();
        var changes = new List<Task>();
        for (int g = 0; g < encoded.Length; g++)
        {
            if (state.Groups[g].AsSpan().SequenceEqual(encoded[g]))
            {
                continue;
            }

            int group = g;
            changes.AddRange(layout.Shards
                .Where(s => layout.Parameters[(int)s.ParamId].GroupIndex == group)
                .Select(s => Shard(s.Index).SetOptions(encoded[group])));
        }

        await Task.WhenAll(changes);
        state.Groups = encoded;
    }

    private LRScheduler RequireScheduler(OptimizerGrainState state)
    {
        if (_scheduler is not null)
        {
            return _scheduler;
        }

        if (state.Scheduler is null)
        {
            throw new OptimizerFaultException(OptimizerFault.InvalidArgument, $"Optimizer '{Name}' has no learning-rate scheduler; attach one first.");
        }

        // Rebuilt after a reactivation in torch's resume order: construct the scheduler (which changes the groups),
        // restore the groups as loading the optimizer's state dict would, then load the scheduler's state dict.
        var groups = state.Groups.Select(PythonBinary.DecodeOptions).ToList();
        var scheduler = SchedulerSpec.FromPython(PythonBinary.Decode(state.Scheduler)).Build(new OptimizerParamGroups(groups, DefaultKeys(state)));
        for (int g = 0; g < groups.Count; g++)
        {
            groups[g] = PythonBinary.DecodeOptions(state.Groups[g]);
        }

        scheduler.LoadStateDict((OrderedDictionary<object, object?>)PythonBinary.Decode(state.SchedulerState!)!);
        _scheduler = scheduler;
        _schedulerGroups = groups;
        return scheduler;
    }

    private static IEnumerable<string> DefaultKeys(OptimizerGrainState state) => PythonBinary.DecodeOptions(state.Defaults).Keys;

    private static LRScheduler SchedulerFault(Func<LRScheduler> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (e is InvalidSchedulerArgumentException or NotSupportedException or InvalidOperationException or FormatException)
        {
            throw new OptimizerFaultException(
                OptimizerFault.InvalidArgument,
                e is InvalidSchedulerArgumentException argument ? argument.Message.Replace($" (Parameter '{argument.ParamName}')", string.Empty, StringComparison.Ordinal) : e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Optimizer {Optimizer} attached scheduler {Scheduler}")]
    private static partial void LogSchedulerSet(ILogger logger, string optimizer, string scheduler);
}
