using System.Buffers;
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
using Orleans.Serialization.Buffers;

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
    public async Task<StepReply> Step(long step, int rank, PooledBuffer gradient)
    {
        PendingStep pending;
        try
        {
            pending = Receive(step, rank, gradient);
        }
        finally
        {
            // The gradient was copied out, or rejected; either way its pooled segments go back now.
            gradient.Dispose();
        }

        if (pending.Count == pending.Received.Length)
        {
            await ApplyAsync(pending);
        }

        var result = await pending.Completion.Task;
        return new StepReply(result.Values[rank], result.Skipped);
    }

    /// <summary>Checks a gradient push against the step protocol and adds it to the step that collects gradients.</summary>
    private PendingStep Receive(long step, int rank, in PooledBuffer gradient)
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

        if (gradient.Length != 0 && gradient.Length != (long)config.Shard.Length * sizeof(float))
        {
            throw Rejected(
                config,
                $"Gradient from rank {rank} for param {config.Shard.ParamId}, elements {config.Shard.Offset}..{config.Shard.Offset + config.Shard.Length}, " +
                $"has {gradient.Length} bytes; expected {config.Shard.Length * sizeof(float)} (float32).");
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
            float[] values = ArrayPool<float>.Shared.Rent(config.Shard.Length);
            FloatBuffers.CopyTo(gradient, values.AsSpan(0, config.Shard.Length));
            pending.Gradients[rank] = values;
        }

        pending.Count++;
        pending.Slice = slice;
        pending.Config = config;
        return pending;
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

    private async Task ApplyAsync(PendingStep pending)
    {
        float[] reduced = ArrayPool<float>.Shared.Rent(pending.Config!.Shard.Length);
        try
        {
            await ApplyAsync(pending, pending.Slice!, pending.Config, reduced);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(reduced);
        }
    }

    /// <summary>Reduces the gradients into <paramref name="reducedBuffer"/>, votes, and applies or drops the step as the verdict says.</summary>
    private async Task ApplyAsync(PendingStep pending, ParameterSlice slice, ShardConfig config, float[] reducedBuffer)
    {
        _pending = null;
        _voting = pending;
        int length = config.Shard.Length;
        bool hasGradient = GradientReducer.Reduce(pending.Gradients, (GradientReduction)config.Reduction, reducedBuffer.AsSpan(0, length));
        pending.ReturnGradients();
        bool finite = !config.SkipNonFiniteSteps || !hasGradient || AllFinite(reducedBuffer.AsSpan(0, length));
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
            if (!skipped)
            {
                slice.Step(reducedBuffer.AsSpan(0, length), hasGradient, pending.Step, KernelPaths.Default);
            }

            _step = pending.Step;
            _attempt = 0;
            _stepsSincePersist++;

            // Every rank gets its own copy, because Orleans returns a pooled buffer to its pool once it has sent it.
            var values = new PooledBuffer[config.WorldSize];
            for (int rank = 0; rank < values.Length; rank++)
            {
                values[rank] = FloatBuffers.FromFloats(slice.Values);
            }

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

    private static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (float value in values)
        {
            if (!float.IsFinite(value))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The outcome of one synchronous step on this shard: the new values for each rank, and whether the step was skipped.</summary>
    private sealed record StepResult(PooledBuffer[] Values, bool Skipped);

    /// <summary>The gradients collected so far for one synchronous step.</summary>
    private sealed class PendingStep(long step, int attempt, int worldSize)
    {
        public long Step { get; } = step;

        public int Attempt { get; } = attempt;

        public bool[] Received { get; } = new bool[worldSize];

        /// <summary>Each rank's gradient in an array rented from <see cref="ArrayPool{T}.Shared"/>, at least the slice's length; <see langword="null"/> for none.</summary>
        public float[]?[] Gradients { get; } = new float[worldSize][];

        public int Count { get; set; }

        /// <summary>The slice and configuration as of the latest push.</summary>
        public ParameterSlice? Slice { get; set; }

        public ShardConfig? Config { get; set; }

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
