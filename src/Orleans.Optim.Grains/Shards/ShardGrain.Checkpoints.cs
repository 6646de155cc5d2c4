using Microsoft.Extensions.Logging;
using Orleans.Optim.Checkpoints;
using Orleans.Optim.Engine;
using Orleans.Optim.Tensors;
using Orleans.Optim.Wire;
using Orleans.Runtime;

namespace Orleans.Optim.Shards;

/// <summary>The shard's part of sharded checkpoints, rollback and migration between silos.</summary>
internal sealed partial class ShardGrain
{
    private const string MigrationKey = "optim-shard";

    private (string Checkpoint, long Step, CheckpointSlice Slice, ShardConfig Config)? _stagedRestore;

    /// <inheritdoc/>
    public async Task<ShardCheckpointResult> WriteCheckpoint(string checkpoint, long expectedStep)
    {
        var config = persisted.State.Config ?? throw NotConfigured();
        var slice = _slice ?? throw new OptimizerFaultException(
            OptimizerFault.NotReady, $"Shard {config.Shard.Index} of optimizer '{config.Optimizer}' has no values to checkpoint.");
        if (_step != expectedStep)
        {
            throw new OptimizerFaultException(
                OptimizerFault.Inconsistent,
                $"Shard {config.Shard.Index} is at step {_step}, not {expectedStep}: take checkpoints between steps.");
        }

        // Copies taken on this turn, so a step applied while the file is written cannot tear it.
        var values = (float[])slice.Values.Clone();
        var state = slice.State?.Clone();
        var orderKey = slice.OrderKey;
        long step = _step;
        string file = CheckpointManifest.ShardFile(config.Optimizer, checkpoint, config.Shard.Index);
        (string Sha256, long Bytes) written = default;
        await checkpointStore.WriteAsync(file, async stream =>
            written = await ShardCheckpointFile.WriteAsync(stream, config.Shard.ToShardInfo(), step, values, state, orderKey));
        return new ShardCheckpointResult(file, written.Sha256 ?? string.Empty, written.Bytes, step);
    }

    /// <inheritdoc/>
    public async Task StageRestore(byte[] manifest, byte[] groupOptions)
    {
        var config = persisted.State.Config ?? throw NotConfigured();
        try
        {
            var parsed = CheckpointManifest.FromJson(manifest, "the manifest sent by the coordinator");
            var slice = await CheckpointSliceReader.ReadAsync(checkpointStore, parsed, config.Shard.ToShardInfo());
            var updated = config with { GroupOptions = groupOptions };
            ParseOptions(updated);
            _stagedRestore = (parsed.Checkpoint, parsed.Step, slice, updated);
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException or IOException)
        {
            LogRestoreFailed(logger, e, config.Optimizer, config.Shard.Index);
            throw new OptimizerFaultException(OptimizerFault.Inconsistent, $"Shard {config.Shard.Index} cannot restore: {e.Message}");
        }
    }

    /// <inheritdoc/>
    public async Task CommitRestore(string checkpoint, Guid timeline)
    {
        var config = persisted.State.Config ?? throw NotConfigured();
        if (_stagedRestore is not { } staged || staged.Checkpoint != checkpoint)
        {
            throw new OptimizerFaultException(
                OptimizerFault.Inconsistent, $"Shard {config.Shard.Index} has no staged restore of '{checkpoint}'; it may have restarted. Restore again.");
        }

        _stagedRestore = null;
        var options = ParseOptions(staged.Config);
        _slice ??= CreateSlice(staged.Config, staged.Slice.Values);
        _slice.Replace(staged.Slice.Values, staged.Slice.State, staged.Slice.OrderKey, options);

        long abandoned = _pending?.Step ?? _voting?.Step ?? 0;
        DropSteps(new OptimizerFaultException(
            OptimizerFault.RolledBack,
            $"Step {abandoned} was abandoned: optimizer '{config.Optimizer}' was rolled back to step {staged.Step}. Continue from step {staged.Step + 1}.")
        {
            ResumeStep = staged.Step,
        });

        _step = staged.Step;
        persisted.State.Config = staged.Config with { Timeline = timeline };
        await PersistAsync();
        LogRestored(logger, config.Optimizer, config.Shard.Index, checkpoint, staged.Step);
    }

    /// <inheritdoc/>
    public Task AbortRestore(string checkpoint)
    {
        if (_stagedRestore?.Checkpoint == checkpoint)
        {
            _stagedRestore = null;
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task MoveTo(SiloAddress silo)
    {
        if (silo.ToString() == RuntimeIdentity)
        {
            return Task.CompletedTask;
        }

        // Migration starts once no request runs, so a step that is collecting gradients finishes first.
        RequestContext.Set(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey, silo);
        MigrateOnIdle();
        RequestContext.Remove(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public void OnDehydrate(IDehydrationContext dehydrationContext)
    {
        // Migration to another silo carries the exact in-memory state, so no step is lost and storage is not needed.
        if (_slice is null || _pending is not null || _voting is not null || persisted.State.Config is not { } config)
        {
            return;
        }

        dehydrationContext.TryAddValue(MigrationKey, new ShardMigrationState
        {
            Config = config,
            Values = FloatBytes.ToBytes(_slice.Values),
            State = SliceStateBinary.Encode(_slice.State),
            Step = _step,
            OrderStep = _slice.OrderKey.Step,
            OrderPosition = _slice.OrderKey.Position,
        });
    }

    /// <inheritdoc/>
    public void OnRehydrate(IRehydrationContext rehydrationContext)
    {
        if (!rehydrationContext.TryGetValue(MigrationKey, out ShardMigrationState? moved) || moved?.Config is not { } config)
        {
            return;
        }

        // The grain's persistent state may be rehydrated after this participant, so the configuration travels too.
        persisted.State.Config ??= config;

        _slice = CreateSlice(config, FloatBytes.ToFloats(moved.Values));
        _slice.Replace(null, SliceStateBinary.Decode(moved.State), new StateOrderKey(moved.OrderStep, moved.OrderPosition), _slice.Options);
        _step = moved.Step;
        _rehydrated = true;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} of optimizer {Optimizer} restored checkpoint {Checkpoint} at step {Step}")]
    private static partial void LogRestored(ILogger logger, string optimizer, int shard, string checkpoint, long step);

    [LoggerMessage(Level = LogLevel.Error, Message = "Shard {Shard} of optimizer {Optimizer} failed to restore a checkpoint")]
    private static partial void LogRestoreFailed(ILogger logger, Exception exception, string optimizer, int shard);
}

/// <summary>A shard's in-memory state while it moves to another silo.</summary>
[GenerateSerializer]
internal sealed class ShardMigrationState
{
    /// <summary>Master values, raw float32 bytes.</summary>
    [Id(0)] public byte[] Values { get; set; } = [];

    /// <summary>The shard's configuration.</summary>
    [Id(5)] public ShardConfig? Config { get; set; }

    /// <summary>Slice state encoded with <c>SliceStateBinary</c>.</summary>
    [Id(1)] public byte[] State { get; set; } = [];

    /// <summary>Steps applied.</summary>
    [Id(2)] public long Step { get; set; }

    /// <summary>First part of the state's order key.</summary>
    [Id(3)] public long OrderStep { get; set; }

    /// <summary>Second part of the state's order key.</summary>
    [Id(4)] public long OrderPosition { get; set; }
}
