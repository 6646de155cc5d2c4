using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Optim.Checkpoints;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Grains;
using Orleans.Optim.Hosting;
using Orleans.Optim.Layout;
using Orleans.Optim.Python;
using Orleans.Optim.Wire;
using Orleans.Runtime;

namespace Orleans.Optim.Coordinator;

/// <summary>
/// The coordinator of one optimizer: validates the spec, assigns param IDs and the shard map, keeps the param groups,
/// and sends configuration and hyperparameter changes to the shards.
/// </summary>
/// <remarks>
/// Tensor data never passes through the coordinator: clients send values and gradients to the shards directly, so
/// the coordinator is not on the step path and no message carries a whole model.
/// </remarks>
[CollectionAgeLimit(AlwaysActive = true)]
internal sealed partial class OptimizerGrain(
    [PersistentState("optimizer", OptimizerSiloBuilderExtensions.StorageName)] IPersistentState<OptimizerGrainState> persisted,
    ICheckpointStore checkpointStore,
    IOptions<CheckpointOptions> checkpointOptions,
    ILogger<OptimizerGrain> logger) : Grain, IOptimizerGrain
{
    /// <summary>Largest allowed shard: 2 Mi elements keeps a shard's snapshot (values and up to four state buffers) near 40 MiB, well under Orleans' 100 MiB message limit.</summary>
    public const int MaxShardElementsLimit = OptimizerSpec.MaxShardElementsLimit;

    private OptimizerLayout? _layout;

    private string Name => this.GetPrimaryKeyString();

    /// <inheritdoc/>
    public async Task<OptimizerDescription> Create(OptimizerSpecData spec)
    {
        if (ShardKeys.Validate(Name) is { } invalidName)
        {
            throw new OptimizerFaultException(OptimizerFault.InvalidArgument, invalidName);
        }

        var state = persisted.State;
        if (state.Status != OptimizerStatus.None)
        {
            var existing = state.CreatedSpec ?? state.Spec!;
            if (!existing.CanonicalBytes().AsSpan().SequenceEqual(spec.CanonicalBytes()))
            {
                throw new OptimizerFaultException(
                    OptimizerFault.Conflict,
                    $"Optimizer '{Name}' already exists with a different spec ({existing.Algorithm}, {existing.Groups.Length} groups, " +
                    $"world size {existing.WorldSize}). Attach to it, or choose another name.");
            }

            if (state.Status == OptimizerStatus.Initializing)
            {
                await ConfigureShardsAsync();
            }

            return Describe(state);
        }

        var (algorithm, defaults, groups) = Resolve(spec);
        _layout = null;
        var layout = OptimizerLayout.Plan(spec.ToSpec());
        state.Spec = spec;
        state.CreatedSpec = spec;
        state.Defaults = PythonBinary.EncodeOptions(defaults);
        state.Groups = groups.Select(PythonBinary.EncodeOptions).ToArray();
        state.Status = OptimizerStatus.Initializing;
        state.Timeline = Guid.NewGuid();
        await persisted.WriteStateAsync();

        await ConfigureShardsAsync();
        LogCreated(logger, Name, algorithm.Name, layout.Parameters.Count, layout.Shards.Count, spec.WorldSize);
        return Describe(state);
    }

    /// <inheritdoc/>
    public async Task<OptimizerDescription> Activate()
    {
        var state = RequireExists();
        if (state.Status == OptimizerStatus.Ready)
        {
            return Describe(state);
        }

        var statuses = await Task.WhenAll(Shards(state).Select(s => s.GetStatus()));
        int missing = statuses.Count(s => !s.HasValues);
        if (missing > 0)
        {
            throw new OptimizerFaultException(
                OptimizerFault.NotReady,
                $"Optimizer '{Name}' cannot start: {missing} of {statuses.Length} shards have no initial values. Send every shard its values, then activate again.");
        }

        state.Status = OptimizerStatus.Ready;
        await persisted.WriteStateAsync();
        return Describe(state);
    }

    /// <inheritdoc/>
    public Task<OptimizerDescription> Describe() => Task.FromResult(Describe(RequireExists()));

    /// <inheritdoc/>
    public async Task<(long Min, long Max)> GetStepRange()
    {
        var statuses = await Task.WhenAll(Shards(RequireExists()).Select(s => s.GetStatus()));
        return (statuses.Min(s => s.Step), statuses.Max(s => s.Step));
    }

    /// <inheritdoc/>
    public async Task<OptimizerDescription> SetHyperparameter(int group, string key, byte[] value)
    {
        var state = RequireExists();
        var spec = state.Spec!;
        if (group < 0 || group >= state.Groups.Length)
        {
            throw new OptimizerFaultException(
                OptimizerFault.InvalidArgument,
                $"Invalid param group index {group}: optimizer '{Name}' has groups 0..{state.Groups.Length - 1}.");
        }

        if (key is "params" or "param_names")
        {
            throw new OptimizerFaultException(
                OptimizerFault.InvalidArgument,
                $"param_groups[{group}]['{key}'] cannot be set: the parameters of a group are fixed when the optimizer is created.");
        }

        var options = PythonBinary.DecodeOptions(state.Groups[group]);
        options[key] = PythonBinary.Decode(value);
        var algorithm = OptimizerAlgorithms.Get(spec.Algorithm);
        try
        {
            algorithm.ParseOptions(options, group);
        }
        catch (InvalidHyperparameterException e)
        {
            throw new OptimizerFaultException(OptimizerFault.InvalidHyperparameter, e.Reason) { Path = e.ParamName };
        }

        byte[] encoded = PythonBinary.EncodeOptions(options);
        var layout = Layout();
        var shards = layout.Shards.Where(s => layout.Parameters[(int)s.ParamId].GroupIndex == group).ToList();
        await Task.WhenAll(shards.Select(s => Shard(s.Index).SetOptions(encoded)));

        state.Groups[group] = encoded;
        SyncSchedulerGroups();
        await persisted.WriteStateAsync();
        return Describe(state);
    }

    /// <inheritdoc/>
    public async Task<OptimizerDescription> AddParamGroup(ParamGroupSpecData group)
    {
        var state = RequireExists();
        var spec = state.Spec!;
        if (state.Status != OptimizerStatus.Ready)
        {
            throw new OptimizerFaultException(OptimizerFault.NotReady, $"Optimizer '{Name}' is still being created; add param groups once it is ready.");
        }

        var (min, max) = await GetStepRange();
        if (min != max)
        {
            throw new OptimizerFaultException(
                OptimizerFault.Inconsistent,
                $"Cannot add a param group to optimizer '{Name}' while a step is applied (shards at steps {min} to {max}); add it between steps.");
        }

        var extended = spec with { Groups = [.. spec.Groups, group] };
        var (_, _, groups) = Resolve(extended);
        var layout = OptimizerLayout.Plan(extended.ToSpec());
        int groupIndex = spec.Groups.Length;
        var newShards = layout.Shards.Where(s => layout.Parameters[(int)s.ParamId].GroupIndex == groupIndex).ToList();
        byte[] options = PythonBinary.EncodeOptions(groups[groupIndex]);

        state.Spec = extended;
        state.Groups = [.. state.Groups, options];
        SyncSchedulerGroups();
        _layout = null;
        await persisted.WriteStateAsync();

        await Task.WhenAll(newShards.Select(shard => Shard(shard.Index).Configure(new ShardConfig
        {
            Optimizer = Name,
            Shard = shard.ToData(),
            GroupIndex = groupIndex,
            Algorithm = spec.Algorithm,
            GroupOptions = options,
            WorldSize = spec.WorldSize,
            Reduction = spec.Reduction,
            SkipNonFiniteSteps = spec.SkipNonFiniteSteps,
            InitialStep = min,
            Defaults = state.Defaults,
            Timeline = state.Timeline,
        })));
        await GrainFactory.GetGrain<IStepVerdictGrain>(Name).SetShardCount(state.Timeline, layout.Shards.Count);
        LogGroupAdded(logger, Name, groupIndex, newShards.Count, min);
        return Describe(state);
    }

    /// <inheritdoc/>
    public async Task<OptimizerDescription> CommitLoad(Guid loadId, byte[][] groups)
    {
        var state = RequireExists();
        var spec = state.Spec!;
        if (groups.Length != state.Groups.Length)
        {
            throw new OptimizerFaultException(
                OptimizerFault.StateDictMismatch,
                $"loaded state dict has a different number of parameter groups: the optimizer has {state.Groups.Length}, the load has {groups.Length}.");
        }

        var algorithm = OptimizerAlgorithms.Get(spec.Algorithm);
        for (int g = 0; g < groups.Length; g++)
        {
            try
            {
                algorithm.ParseOptions(PythonBinary.DecodeOptions(groups[g]), g);
            }
            catch (InvalidHyperparameterException e)
            {
                throw new OptimizerFaultException(OptimizerFault.InvalidHyperparameter, e.Reason) { Path = e.ParamName };
            }
        }

        // NOTE: everything is validated before this point. A shard that restarts between staging and this commit still
        // fails here after others committed, so the caller gets an Inconsistent fault and must load again.
        var layout = Layout();
        await Task.WhenAll(layout.Shards.Select(s => Shard(s.Index).CommitLoad(loadId, groups[layout.Parameters[(int)s.ParamId].GroupIndex])));

        state.Groups = groups;
        SyncSchedulerGroups();
        await persisted.WriteStateAsync();
        LogLoaded(logger, Name, loadId);
        return Describe(state);
    }

    private (OptimizerAlgorithm Algorithm, OrderedDictionary<string, object?> Defaults, List<OrderedDictionary<string, object?>> Groups) Resolve(OptimizerSpecData spec)
    {
        try
        {
            if (spec.MaxShardElements > MaxShardElementsLimit)
            {
                throw new ArgumentException(
                    $"Invalid maximum shard size {spec.MaxShardElements}: expected at most {MaxShardElementsLimit} elements, so that no message comes near Orleans' message size limit.");
            }

            return spec.ToSpec().Resolve();
        }
        catch (InvalidHyperparameterException e)
        {
            throw new OptimizerFaultException(OptimizerFault.InvalidHyperparameter, e.Reason) { Path = e.ParamName };
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or FormatException)
        {
            throw new OptimizerFaultException(OptimizerFault.InvalidArgument, e.Message);
        }
    }

    private async Task ConfigureShardsAsync()
    {
        var state = persisted.State;
        var spec = state.Spec!;
        var layout = Layout();
        await Task.WhenAll(layout.Shards.Select(shard =>
        {
            int group = layout.Parameters[(int)shard.ParamId].GroupIndex;
            return Shard(shard.Index).Configure(new ShardConfig
            {
                Optimizer = Name,
                Shard = shard.ToData(),
                GroupIndex = group,
                Algorithm = spec.Algorithm,
                GroupOptions = state.Groups[group],
                WorldSize = spec.WorldSize,
                Reduction = spec.Reduction,
                SkipNonFiniteSteps = spec.SkipNonFiniteSteps,
                Defaults = state.Defaults,
                Timeline = state.Timeline,
            });
        }));
        await GrainFactory.GetGrain<IStepVerdictGrain>(Name).SetShardCount(state.Timeline, layout.Shards.Count);
    }

    private OptimizerGrainState RequireExists()
    {
        var state = persisted.State;
        if (state.Status == OptimizerStatus.None)
        {
            throw new OptimizerFaultException(OptimizerFault.NotFound, $"No optimizer named '{Name}': create it first.");
        }

        return state;
    }

    private OptimizerDescription Describe(OptimizerGrainState state)
    {
        var layout = Layout();
        return new OptimizerDescription
        {
            Name = Name,
            Status = state.Status,
            Spec = state.Spec!,
            Parameters = layout.Parameters.Select(p => p.ToData()).ToArray(),
            Shards = layout.Shards.Select(s => s.ToData()).ToArray(),
            Defaults = state.Defaults,
            Groups = state.Groups,
        };
    }

    private OptimizerLayout Layout() => _layout ??= OptimizerLayout.Plan(persisted.State.Spec!.ToSpec());

    private IEnumerable<IShardGrain> Shards(OptimizerGrainState state) =>
        Layout().Shards.Select(s => Shard(s.Index));

    private IShardGrain Shard(int index) => GrainFactory.GetGrain<IShardGrain>(ShardKeys.For(Name, index));

    [LoggerMessage(Level = LogLevel.Information, Message = "Created optimizer {Optimizer}: {Algorithm}, {Parameters} parameters in {Shards} shards, world size {WorldSize}")]
    private static partial void LogCreated(ILogger logger, string optimizer, string algorithm, int parameters, int shards, int worldSize);

    [LoggerMessage(Level = LogLevel.Information, Message = "Optimizer {Optimizer} added param group {Group} with {Shards} shards at step {Step}")]
    private static partial void LogGroupAdded(ILogger logger, string optimizer, int group, int shards, long step);

    [LoggerMessage(Level = LogLevel.Information, Message = "Optimizer {Optimizer} committed load {LoadId}")]
    private static partial void LogLoaded(ILogger logger, string optimizer, Guid loadId);
}
