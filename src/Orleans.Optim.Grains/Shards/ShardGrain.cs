using System.Buffers;
using System.Numerics.Tensors;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Checkpoints;
using Orleans.Optim.Engine;
using Orleans.Optim.Grains;
using Orleans.Optim.Hosting;
using Orleans.Optim.Layout;
using Orleans.Optim.Placement;
using Orleans.Optim.Python;
using Orleans.Optim.Tensors;
using Orleans.Optim.Wire;
using Orleans.Runtime;

namespace Orleans.Optim.Shards;

/// <summary>
/// A slice of one parameter with its fp32 master values and optimizer state. It collects every rank's gradient for a
/// synchronous step, reduces them in rank order, applies the update and returns the new values to every rank.
/// </summary>
/// <remarks>
/// The grain is reentrant so that ranks can wait for each other inside <see cref="Step"/>; every state change still
/// happens on one grain turn, between awaits, so no two changes interleave. The update kernel runs on that turn.
/// </remarks>
[Reentrant]
[SpreadShardsPlacement]
[CollectionAgeLimit(AlwaysActive = true)]
internal sealed partial class ShardGrain(
    [PersistentState("shard", OptimizerSiloBuilderExtensions.StorageName)] IPersistentState<ShardGrainState> persisted,
    IOptions<ShardOptions> options,
    ICheckpointStore checkpointStore,
    ILogger<ShardGrain> logger) : Grain, IShardGrain, IGrainMigrationParticipant
{
    private readonly ShardOptions _options = options.Value;
    private readonly Dictionary<Guid, (SliceState? State, StateOrderKey OrderKey)> _stagedLoads = [];

    /// <summary>Sources of replies that may still read the slice's values; detached before the values change in place.</summary>
    private readonly List<SharedFloatSource> _sentValues = [];
    private ParameterSlice? _slice;
    private PendingStep? _pending;
    private PendingStep? _voting;
    private long _step;
    private int _attempt;
    private long _stepsSincePersist;
    private bool _rehydrated;

    /// <inheritdoc/>
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var saved = persisted.State;
        if (_rehydrated)
        {
            return Task.CompletedTask;
        }

        if (saved.Config is not null && saved.Values is not null)
        {
            _slice = CreateSlice(saved.Config, FloatBytes.ToFloats(saved.Values));
            _slice.Replace(null, SliceStateBinary.Decode(saved.State), new StateOrderKey(saved.OrderStep, saved.OrderPosition), _slice.Options);
            _step = saved.Step;
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_options.PersistOnDeactivation && _slice is not null && _stepsSincePersist > 0)
        {
            try
            {
                await PersistAsync();
            }
            catch (Exception e)
            {
                LogPersistOnDeactivationFailed(logger, e, this.GetPrimaryKeyString(), _step, reason.ReasonCode.ToString());
            }
        }
    }

    /// <inheritdoc/>
    public async Task Configure(ShardConfig config)
    {
        var current = persisted.State.Config;
        if (current is not null && current.Shard == config.Shard && current.Algorithm == config.Algorithm
            && current.WorldSize == config.WorldSize && current.Reduction == config.Reduction && current.GroupIndex == config.GroupIndex)
        {
            // A repeated create: keep values, only refresh the hyperparameters.
            persisted.State.Config = config;
            _slice?.SetOptions(ParseOptions(config));
            await persisted.WriteStateAsync();
            return;
        }

        ParseOptions(config);
        DropSteps(new OptimizerFaultException(OptimizerFault.Inconsistent, $"Shard {this.GetPrimaryKeyString()} was reconfigured during a step."));
        _slice = null;
        _step = config.InitialStep;
        persisted.State = new ShardGrainState { Config = config, Step = config.InitialStep };
        await persisted.WriteStateAsync();
    }

    /// <inheritdoc/>
    public async Task SetValues(byte[] values)
    {
        var config = persisted.State.Config ?? throw NotConfigured();
        if (values.Length != (long)config.Shard.Length * sizeof(float))
        {
            throw new OptimizerFaultException(
                OptimizerFault.InvalidArgument,
                $"Values for shard {config.Shard.Index} (param {config.Shard.ParamId}, elements {config.Shard.Offset}..{config.Shard.Offset + config.Shard.Length}) " +
                $"have {values.Length} bytes; expected {config.Shard.Length * sizeof(float)} (float32).");
        }

        if (_pending is not null)
        {
            throw new OptimizerFaultException(
                OptimizerFault.InvalidArgument,
                $"Cannot set the values of shard {config.Shard.Index} while step {_pending.Step} is collecting gradients; set them between steps.");
        }

        float[] floats = FloatBytes.ToFloats(values);
        if (_slice is null)
        {
            _slice = CreateSlice(config, floats);
        }
        else
        {
            _slice.Replace(floats, _slice.State, _slice.OrderKey, _slice.Options);
        }

        await PersistAsync();
    }

    /// <inheritdoc/>
    public Task<ShardStatus> GetStatus() =>
        Task.FromResult(new ShardStatus(
            persisted.State.Config is not null,
            _slice is not null,
            _step,
            RuntimeIdentity,
            _pending is null ? [] : Enumerable.Range(0, _pending.Received.Length).Where(r => _pending.Received[r]).ToArray()));

    /// <inheritdoc/>
    public async Task<StepReply> Step(long step, int rank, FloatPayload gradient)
    {
        long replyToken = gradient.ReplyToken;
        PendingStep pending;
        ParameterSlice slice;
        ShardConfig config;
        try
        {
            (pending, slice, config) = Receive(step, rank, gradient);
        }
        finally
        {
            // The gradient was taken, or rejected; a received array that was not taken goes back to its pool now.
            gradient.Dispose();
        }

        if (pending.Count == pending.Received.Length)
        {
            try
            {
                await ApplyAsync(pending, slice, config);
            }
            finally
            {
                pending.ReturnGradients();
            }
        }

        var result = await pending.Completion.Task;
        return new StepReply(FloatPayload.Share(result.Values, destinationToken: replyToken), result.Skipped);
    }

    /// <summary>
    /// Checks a gradient push against the step protocol and adds it to the step that collects gradients, which it
    /// returns with the slice and configuration it was checked against.
    /// </summary>
    private (PendingStep Pending, ParameterSlice Slice, ShardConfig Config) Receive(long step, int rank, FloatPayload gradient)
    {
        var config = persisted.State.Config ?? throw NotConfigured();
        var slice = _slice ?? throw new OptimizerFaultException(
            OptimizerFault.NotReady,
            $"Shard {config.Shard.Index} of optimizer '{config.Optimizer}' has no values yet: finish creating the optimizer before stepping.");

        if (rank < 0 || rank >= config.WorldSize)
        {
            throw Rejected(config, $"Invalid rank {rank}: expected 0 <= rank < world_size = {config.WorldSize}.");
        }

        if (step <= _step)
        {
            throw Rejected(config, $"Step {step} from rank {rank} is already applied: the optimizer is at step {_step}, so the next step is {_step + 1}.");
        }

        if (step > _step + 1)
        {
            throw Rejected(config, $"Step {step} from rank {rank} is too far ahead: the optimizer is at step {_step}, so the next step is {_step + 1}.");
        }

        if (gradient.Length != 0 && gradient.Length != config.Shard.Length)
        {
            throw Rejected(
                config,
                $"Gradient from rank {rank} for param {config.Shard.ParamId}, elements {config.Shard.Offset}..{config.Shard.Offset + config.Shard.Length}, " +
                $"has {gradient.Length} float32 values ({(long)gradient.Length * sizeof(float)} bytes); expected {config.Shard.Length} ({(long)config.Shard.Length * sizeof(float)} bytes).");
        }

        if (_voting is { } voting && voting.Step == step)
        {
            throw Rejected(config, $"Rank {rank} already pushed its gradient for step {step}, which waits for the other shards: push once per step.");
        }

        var pending = _pending ??= StartPendingStep(step, config);
        if (pending.Received[rank])
        {
            throw Rejected(config, $"Rank {rank} already pushed its gradient for step {step}: push once per step.");
        }

        pending.Received[rank] = true;
        if (gradient.Length != 0)
        {
            // A received gradient's own array, or a copy of a gradient from this process, which the sender may change
            // once its call returns.
            pending.Gradients[rank] = gradient.TakeOrCopy();
        }

        pending.Count++;
        return (pending, slice, config);
    }

    /// <inheritdoc/>
    public async Task SetOptions(byte[] groupOptions)
    {
        var config = persisted.State.Config ?? throw NotConfigured();
        var updated = config with { GroupOptions = groupOptions };
        var parsed = ParseOptions(updated);
        persisted.State.Config = updated;
        _slice?.SetOptions(parsed);
        await PersistAsync();
    }

    /// <inheritdoc/>
    public Task<ShardSnapshot> Snapshot()
    {
        var config = persisted.State.Config ?? throw NotConfigured();
        var slice = _slice ?? throw new OptimizerFaultException(
            OptimizerFault.NotReady, $"Shard {config.Shard.Index} of optimizer '{config.Optimizer}' has no values yet.");
        return Task.FromResult(new ShardSnapshot(
            _step,
            FloatBytes.ToBytes(slice.Values),
            SliceStateBinary.Encode(slice.State),
            slice.OrderKey.Step,
            slice.OrderKey.Position));
    }

    /// <inheritdoc/>
    public Task StageLoad(Guid loadId, ShardLoad load)
    {
        var config = persisted.State.Config ?? throw NotConfigured();
        SliceState? state;
        try
        {
            state = SliceStateBinary.Decode(load.State);
        }
        catch (FormatException e)
        {
            throw new OptimizerFaultException(OptimizerFault.InvalidArgument, $"Invalid staged state for shard {config.Shard.Index}: {e.Message}");
        }

        var lengths = state?.Entries.Where(e => e.Kind == StateValueKind.ParamTensor).Select(e => e.Values!.Length).Distinct().ToList() ?? [];
        if (lengths.Any(length => length != config.Shard.Length))
        {
            throw new OptimizerFaultException(
                OptimizerFault.InvalidArgument,
                $"Staged state for shard {config.Shard.Index} has tensors of {string.Join(", ", lengths)} elements; expected {config.Shard.Length}.");
        }

        _stagedLoads[loadId] = (state, new StateOrderKey(load.OrderStep, load.OrderPosition));
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public async Task CommitLoad(Guid loadId, byte[] groupOptions)
    {
        var config = persisted.State.Config ?? throw NotConfigured();
        var slice = _slice ?? throw new OptimizerFaultException(OptimizerFault.NotReady, $"Shard {config.Shard.Index} has no values yet.");
        if (!_stagedLoads.Remove(loadId, out var staged))
        {
            throw new OptimizerFaultException(
                OptimizerFault.Inconsistent,
                $"Shard {config.Shard.Index} has no staged load {loadId}; it may have restarted. Run load_state_dict again.");
        }

        var updated = config with { GroupOptions = groupOptions };
        slice.Replace(null, staged.State, staged.OrderKey, ParseOptions(updated));
        persisted.State.Config = updated;
        await PersistAsync();
    }

    /// <inheritdoc/>
    public Task AbortLoad(Guid loadId)
    {
        _stagedLoads.Remove(loadId);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task AbandonStep(long step, int attempt, Guid timeline, string reason)
    {
        if (step != _step + 1 || persisted.State.Config?.Timeline != timeline)
        {
            return Task.CompletedTask;
        }

        _attempt = Math.Max(_attempt, attempt + 1);
        if (_pending is { } pending && pending.Step == step && pending.Attempt == attempt)
        {
            _pending = null;
            pending.Fail(new OptimizerFaultException(OptimizerFault.StepTimedOut, reason));
        }

        return Task.CompletedTask;
    }

    private PendingStep StartPendingStep(long step, ShardConfig config)
    {
        var pending = new PendingStep(step, _attempt, config.WorldSize);
        _ = ExpireAsync(pending, config);
        return pending;
    }

    /// <summary>Fails the step that collects gradients and the step that waits for its verdict.</summary>
    private void DropSteps(OptimizerFaultException fault)
    {
        _pending?.Fail(fault);
        _voting?.Fail(fault);
        _pending = null;
        _voting = null;
        _attempt = 0;
    }

    private async Task ExpireAsync(PendingStep pending, ShardConfig config)
    {
        await Task.Delay(_options.StepTimeout);
        if (!ReferenceEquals(_pending, pending) || pending.Completion.Task.IsCompleted)
        {
            return;
        }

        _pending = null;
        _attempt = Math.Max(_attempt, pending.Attempt + 1);
        var missing = Enumerable.Range(0, config.WorldSize).Where(r => !pending.Received[r]).ToList();
        LogStepTimedOut(logger, config.Optimizer, config.Shard.Index, pending.Step, string.Join(", ", missing));
        string reason =
            $"Step {pending.Step} of optimizer '{config.Optimizer}' timed out after {_options.StepTimeout.TotalSeconds:0.#} s: shard {config.Shard.Index} " +
            $"is missing the gradient of rank(s) {string.Join(", ", missing)}. The optimizer stays at step {pending.Step - 1}; push step {pending.Step} again from every rank.";

        // The other shards drop the attempt before any rank hears of it, even those that have every gradient.
        try
        {
            await GrainFactory.GetGrain<IStepVerdictGrain>(config.Optimizer).Abandon(pending.Step, pending.Attempt, config.Timeline, config.Shard.Index, reason);
        }
        catch (Exception e)
        {
            LogStepFailed(logger, e, config.Optimizer, config.Shard.Index, pending.Step);
        }

        pending.Fail(new OptimizerFaultException(OptimizerFault.StepTimedOut, reason));
    }

    /// <summary>
    /// Reduces the gradients in place into the first rank's gradient array, votes, and applies or drops the step
    /// according to the verdict.
    /// </summary>
    private async Task ApplyAsync(PendingStep pending, ParameterSlice slice, ShardConfig config)
    {
        _pending = null;
        _voting = pending;
        int length = config.Shard.Length;
        float[]? reducedArray = GradientReducer.ReduceInPlace(pending.Gradients, (GradientReduction)config.Reduction, length);
        bool hasGradient = reducedArray is not null;
        bool finite = !config.SkipNonFiniteSteps || reducedArray is null || TensorPrimitives.IsFiniteAll<float>(reducedArray.AsSpan(0, length));
        StepVerdict verdict;
        try
        {
            verdict = await GrainFactory.GetGrain<IStepVerdictGrain>(config.Optimizer).Vote(pending.Step, pending.Attempt, config.Timeline, config.Shard.Index, finite);
        }
        catch (Exception e)
        {
            LogStepFailed(logger, e, config.Optimizer, config.Shard.Index, pending.Step);
            if (ReferenceEquals(_voting, pending))
            {
                _voting = null;
                pending.Fail(new OptimizerFaultException(
                    OptimizerFault.Inconsistent,
                    $"Step {pending.Step} of optimizer '{config.Optimizer}' failed: shard {config.Shard.Index} could not get the step's verdict ({e.Message}). " +
                    "Other shards may have applied it; call Recover to roll the optimizer back to its newest sharded checkpoint.",
                    e));
            }

            return;
        }

        if (!ReferenceEquals(_voting, pending))
        {
            // A restore or a new configuration failed the step while it waited for the verdict.
            return;
        }

        _voting = null;
        if (verdict.Outcome == StepOutcome.Abandon)
        {
            _attempt = Math.Max(_attempt, pending.Attempt + 1);
            pending.Fail(new OptimizerFaultException(OptimizerFault.StepTimedOut, verdict.Reason ?? $"Step {pending.Step} was abandoned."));
            return;
        }

        bool skipped = verdict.Outcome == StepOutcome.Skip;
        try
        {
            if (!skipped && reducedArray is not null)
            {
                // The kernel updates the values in place, so replies of earlier steps that are still unsent get a copy first.
                DetachSentValues();
                slice.Step(reducedArray.AsSpan(0, length), hasGradient, pending.Step, KernelPaths.Default);
            }

            _step = pending.Step;
            _attempt = 0;
            _stepsSincePersist++;

            // Every rank's reply reads the values from the slice itself, without a copy per rank. Sources that every rank
            // has read need no copy later, so they are dropped here. That keeps the list short while steps without a
            // gradient leave the values as they are.
            var values = new SharedFloatSource(slice.Values, slice.Values.Length, config.WorldSize);
            _sentValues.RemoveAll(sent => sent.TryRelease());
            _sentValues.Add(values);
            pending.Completion.SetResult(new StepResult(values, skipped));
        }
        catch (Exception e)
        {
            LogStepFailed(logger, e, config.Optimizer, config.Shard.Index, pending.Step);
            pending.Fail(new OptimizerFaultException(OptimizerFault.Inconsistent, $"Step {pending.Step} failed on shard {config.Shard.Index}: {e.Message}", e));
            return;
        }

        if (_options.PersistEverySteps > 0 && _stepsSincePersist >= _options.PersistEverySteps)
        {
            await PersistAsync();
        }
    }

    /// <summary>
    /// Makes every reply that may still read the slice's values keep a copy of them, or drop them once every rank has
    /// read them. Called before the values change in place.
    /// </summary>
    private void DetachSentValues()
    {
        foreach (var sent in _sentValues)
        {
            sent.Detach();
        }

        _sentValues.Clear();
    }

    private async Task PersistAsync()
    {
        var state = persisted.State;
        if (_slice is not null)
        {
            state.Values = FloatBytes.ToBytes(_slice.Values);
            state.State = SliceStateBinary.Encode(_slice.State);
            state.OrderStep = _slice.OrderKey.Step;
            state.OrderPosition = _slice.OrderKey.Position;
        }

        state.Step = _step;
        await persisted.WriteStateAsync();
        _stepsSincePersist = 0;
    }

    private static ParameterSlice CreateSlice(ShardConfig config, float[] values)
    {
        try
        {
            return new(OptimizerAlgorithms.Get(config.Algorithm), ParseOptions(config), config.Shard.ParamId, values, PythonBinary.DecodeOptions(config.Defaults));
        }
        catch (InvalidHyperparameterException e)
        {
            throw new OptimizerFaultException(OptimizerFault.InvalidHyperparameter, e.Reason) { Path = e.ParamName };
        }
    }

    private static AlgorithmOptions ParseOptions(ShardConfig config)
    {
        try
        {
            // The coordinator checked the values it accepted from users; values a scheduler wrote may leave torch's
            // constructor ranges, as torch allows, so the shard checks only their types.
            return OptimizerAlgorithms.Get(config.Algorithm).ParseOptions(PythonBinary.DecodeOptions(config.GroupOptions), config.GroupIndex, checkRanges: false);
        }
        catch (InvalidHyperparameterException e)
        {
            throw new OptimizerFaultException(OptimizerFault.InvalidHyperparameter, e.Reason) { Path = e.ParamName };
        }
    }

    private OptimizerFaultException NotConfigured() =>
        new(OptimizerFault.NotFound, $"Shard '{this.GetPrimaryKeyString()}' is not part of any optimizer: create the optimizer first.");

    private static OptimizerFaultException Rejected(ShardConfig config, string reason) =>
        new(OptimizerFault.StepRejected, $"Optimizer '{config.Optimizer}', shard {config.Shard.Index}: {reason}");

    [LoggerMessage(Level = LogLevel.Warning, Message = "Step {Step} of optimizer {Optimizer} timed out on shard {Shard}; missing ranks {MissingRanks}")]
    private static partial void LogStepTimedOut(ILogger logger, string optimizer, int shard, long step, string missingRanks);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Shard {Shard} could not write its state at step {Step} while deactivating ({Reason})")]
    private static partial void LogPersistOnDeactivationFailed(ILogger logger, Exception exception, string shard, long step, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Step {Step} of optimizer {Optimizer} failed on shard {Shard}")]
    private static partial void LogStepFailed(ILogger logger, Exception exception, string optimizer, int shard, long step);

    /// <summary>The outcome of one synchronous step on this shard: the new values, which every rank's reply shares, and whether the step was skipped.</summary>
    private sealed record StepResult(SharedFloatSource Values, bool Skipped);

    /// <summary>The gradients collected so far for one synchronous step.</summary>
    private sealed class PendingStep(long step, int attempt, int worldSize)
    {
        public long Step { get; } = step;

        public int Attempt { get; } = attempt;

        public bool[] Received { get; } = new bool[worldSize];

        /// <summary>
        /// Each rank's gradient in an array rented from <see cref="ArrayPool{T}.Shared"/>, at least the slice's length;
        /// <see langword="null"/> for none. The reduction overwrites the first of them.
        /// </summary>
        public float[]?[] Gradients { get; } = new float[worldSize][];

        public int Count { get; set; }

        public TaskCompletionSource<StepResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Returns the gradient arrays to the pool once they are reduced.</summary>
        public void ReturnGradients()
        {
            for (int rank = 0; rank < Gradients.Length; rank++)
            {
                if (Gradients[rank] is { } gradient)
                {
                    ArrayPool<float>.Shared.Return(gradient);
                    Gradients[rank] = null;
                }
            }
        }

        public void Fail(Exception exception) => Completion.TrySetException(exception);
    }
}
