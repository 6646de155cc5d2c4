using System.Globalization;
using Microsoft.Extensions.Logging;
using Orleans.Optim.Checkpoints;
using Orleans.Optim.Grains;
using Orleans.Optim.Layout;
using Orleans.Optim.Python;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Coordinator;

/// <summary>
/// The coordinator's part of sharded checkpoints: taking them (shards write in parallel, the manifest last),
/// listing, deleting, restoring in place, recovering after a lost silo, and creating an optimizer from one.
/// </summary>
internal sealed partial class OptimizerGrain
{
    /// <inheritdoc/>
    public async Task<CheckpointInfo> Checkpoint()
    {
        var state = RequireExists();
        var (min, max) = await GetStepRange();
        if (min != max)
        {
            throw new OptimizerFaultException(
                OptimizerFault.Inconsistent,
                $"Cannot checkpoint optimizer '{Name}' while a step is applied (shards at steps {min} to {max}); checkpoint between steps.");
        }

        string id = CheckpointManifest.IdForStep(min);
        var layout = Layout();
        ShardCheckpointResult[] results;
        try
        {
            results = await Task.WhenAll(layout.Shards.Select(s => Shard(s.Index).WriteCheckpoint(id, min)));
        }
        catch (Exception e)
        {
            // Without a manifest the partial files are not a checkpoint; remove them so they take no space.
            LogCheckpointFailed(logger, e, Name, id);
            await DeleteFilesAsync(id, manifestFirst: false);
            throw;
        }

        var manifest = new CheckpointManifest
        {
            Optimizer = Name,
            Checkpoint = id,
            Step = min,
            CreatedUtc = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            Algorithm = state.Spec!.Algorithm,
            WorldSize = state.Spec.WorldSize,
            Reduction = state.Spec.Reduction,
            SkipNonFiniteSteps = state.Spec.SkipNonFiniteSteps,
            MaxShardElements = state.Spec.MaxShardElements,
            Defaults = Convert.ToBase64String(state.Defaults),
            Groups = state.Groups.Select(Convert.ToBase64String).ToArray(),
            Parameters = layout.Parameters.Select(p => new ManifestParameter { Id = p.Id, Name = p.Name, Shape = p.Shape, Group = p.GroupIndex }).ToArray(),
            Shards = layout.Shards.Zip(results).Select(pair => new ManifestShard
            {
                Index = pair.First.Index,
                ParamId = pair.First.ParamId,
                Offset = pair.First.Offset,
                Length = pair.First.Length,
                File = pair.Second.File,
                Sha256 = pair.Second.Sha256,
                Bytes = pair.Second.Bytes,
            }).ToArray(),
            Scheduler = state.Scheduler is null ? null : Convert.ToBase64String(state.Scheduler),
            SchedulerState = state.SchedulerState is null ? null : Convert.ToBase64String(state.SchedulerState),
        };

        // The manifest is written last: only now does the checkpoint exist for readers.
        byte[] json = manifest.ToJson();
        await checkpointStore.WriteAsync($"{CheckpointManifest.FolderOf(Name, id)}/{CheckpointManifest.FileName}", stream => stream.WriteAsync(json).AsTask());
        LogCheckpointWritten(logger, Name, id, min, results.Sum(r => r.Bytes));

        await ApplyRetentionAsync();
        return Info(manifest);
    }

    /// <inheritdoc/>
    public async Task<CheckpointInfo[]> ListCheckpoints()
    {
        RequireExists();
        var infos = new List<CheckpointInfo>();
        foreach (string id in await CheckpointManifest.ListAsync(checkpointStore, Name))
        {
            infos.Add(Info(await CheckpointManifest.ReadAsync(checkpointStore, Name, id)));
        }

        return [.. infos];
    }

    /// <inheritdoc/>
    public async Task DeleteCheckpoint(string checkpoint)
    {
        RequireExists();
        CheckId(checkpoint);
        if (!(await CheckpointManifest.ListAsync(checkpointStore, Name)).Contains(checkpoint))
        {
            throw new OptimizerFaultException(OptimizerFault.NotFound, $"Optimizer '{Name}' has no checkpoint '{checkpoint}'.");
        }

        await DeleteFilesAsync(checkpoint, manifestFirst: true);
    }

    /// <inheritdoc/>
    public async Task<long> RestoreCheckpoint(string checkpoint)
    {
        RequireExists();
        CheckId(checkpoint);
        var manifest = await ReadManifestAsync(Name, checkpoint);
        var layout = Layout();
        if (!manifest.ToLayout().Shards.SequenceEqual(layout.Shards) || manifest.Algorithm != persisted.State.Spec!.Algorithm)
        {
            throw new OptimizerFaultException(
                OptimizerFault.Conflict,
                $"Checkpoint '{checkpoint}' was written with another layout or algorithm than optimizer '{Name}' has now; create a new optimizer from it instead.");
        }

        await RestoreShardsAsync(manifest, layout);
        LogRestoredInPlace(logger, Name, checkpoint, manifest.Step);
        return manifest.Step;
    }

    /// <inheritdoc/>
    public async Task<long> Recover()
    {
        var state = RequireExists();
        var layout = Layout();
        var deadline = DateTime.UtcNow + checkpointOptions.Value.RecoveryTimeout;
        ShardStatus[]? statuses = null;
        while (statuses is null)
        {
            try
            {
                // A call to a shard on a dead silo fails or times out until the cluster declares that silo dead and the
                // shard can come back on a survivor; keep asking until then.
                statuses = await Task.WhenAll(layout.Shards.Select(s => Shard(s.Index).GetStatus())).WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (Exception e) when (e is TimeoutException or OrleansException && DateTime.UtcNow < deadline)
            {
                LogRecoveryWaiting(logger, Name, e.Message);
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
        }

        long min = statuses.Min(s => s.Step);
        if (statuses.All(s => s.HasValues) && min == statuses.Max(s => s.Step))
        {
            return min;
        }

        var ids = await CheckpointManifest.ListAsync(checkpointStore, Name);
        if (ids.Count == 0)
        {
            throw new OptimizerFaultException(
                OptimizerFault.Inconsistent,
                $"Optimizer '{Name}' lost shard state (shards at steps {min} to {statuses.Max(s => s.Step)}, {statuses.Count(s => !s.HasValues)} without values) " +
                "and has no complete checkpoint to roll back to. Take checkpoints regularly, or create the optimizer again.");
        }

        var manifest = await ReadManifestAsync(Name, ids[^1]);
        await RestoreShardsAsync(manifest, layout);
        LogRecovered(logger, Name, manifest.Checkpoint, manifest.Step, statuses.Count(s => !s.HasValues));
        return manifest.Step;
    }

    /// <inheritdoc/>
    public async Task<OptimizerDescription> CreateFromCheckpoint(string sourceOptimizer, string checkpoint, int? maxShardElements)
    {
        if (ShardKeys.Validate(Name) is { } invalidName)
        {
            throw new OptimizerFaultException(OptimizerFault.InvalidArgument, invalidName);
        }

        if (persisted.State.Status != OptimizerStatus.None)
        {
            throw new OptimizerFaultException(OptimizerFault.Conflict, $"Optimizer '{Name}' already exists; restore into a new name.");
        }

        CheckId(checkpoint);
        var manifest = await ReadManifestAsync(sourceOptimizer, checkpoint);
        var groups = manifest.DecodeGroups();
        var spec = new OptimizerSpec
        {
            Algorithm = manifest.Algorithm,
            DefaultOptions = manifest.DecodeDefaults().ToList(),
            Groups = groups.Select((options, g) => new ParamGroupSpec(
                options.ToList(),
                manifest.Parameters.Where(p => p.Group == g).OrderBy(p => p.Id).Select(p => new ParameterSpec(p.Name, p.Shape)).ToList())).ToList(),
            WorldSize = manifest.WorldSize,
            Reduction = (GradientReduction)manifest.Reduction,
            MaxShardElements = maxShardElements ?? manifest.MaxShardElements,
            SkipNonFiniteSteps = manifest.SkipNonFiniteSteps,
        };
        var data = spec.ToData();
        var (_, defaults, resolvedGroups) = Resolve(data);

        var state = persisted.State;
        state.Spec = data;
        state.CreatedSpec = data;
        state.Defaults = PythonBinary.EncodeOptions(defaults);
        state.Groups = resolvedGroups.Select(PythonBinary.EncodeOptions).ToArray();
        state.Scheduler = manifest.Scheduler is null ? null : Convert.FromBase64String(manifest.Scheduler);
        state.SchedulerState = manifest.SchedulerState is null ? null : Convert.FromBase64String(manifest.SchedulerState);
        state.Status = OptimizerStatus.Initializing;
        state.Timeline = Guid.NewGuid();
        _layout = null;
        await persisted.WriteStateAsync();

        try
        {
            await ConfigureShardsAsync();
            await RestoreShardsAsync(manifest, Layout());
        }
        catch
        {
            // Leave no half-created optimizer behind, so that the same name can be used again.
            persisted.State = new OptimizerGrainState();
            _layout = null;
            await persisted.WriteStateAsync();
            throw;
        }

        state.Status = OptimizerStatus.Ready;
        await persisted.WriteStateAsync();
        LogCreatedFromCheckpoint(logger, Name, sourceOptimizer, checkpoint, manifest.Step, Layout().Shards.Count);
        return Describe(state);
    }

    /// <summary>Restores every shard of <paramref name="layout"/>, the groups and the scheduler from a manifest.</summary>
    private async Task RestoreShardsAsync(CheckpointManifest manifest, OptimizerLayout layout)
    {
        var state = persisted.State;
        byte[] json = manifest.ToJson();
        var groups = manifest.Groups.Select(Convert.FromBase64String).ToArray();

        // A shard whose silo died may come back without its configuration (in-memory storage); configure it again.
        await ConfigureShardsAsync();

        // Every shard reads and checks its part first; only when all succeeded do they switch, so a damaged file
        // changes nothing.
        try
        {
            await Task.WhenAll(layout.Shards.Select(s => Shard(s.Index).StageRestore(json, groups[layout.Parameters[(int)s.ParamId].GroupIndex])));
        }
        catch
        {
            await Task.WhenAll(layout.Shards.Select(s => Shard(s.Index).AbortRestore(manifest.Checkpoint)));
            throw;
        }

        // Reports on steps from before the rollback must never count after it, so the shards move to a new timeline.
        var timeline = Guid.NewGuid();
        await GrainFactory.GetGrain<IStepVerdictGrain>(Name).SetShardCount(timeline, layout.Shards.Count);
        await Task.WhenAll(layout.Shards.Select(s => Shard(s.Index).CommitRestore(manifest.Checkpoint, timeline)));

        state.Timeline = timeline;
        state.Groups = groups;
        state.Scheduler = manifest.Scheduler is null ? null : Convert.FromBase64String(manifest.Scheduler);
        state.SchedulerState = manifest.SchedulerState is null ? null : Convert.FromBase64String(manifest.SchedulerState);
        _scheduler = null;
        _schedulerGroups = null;
        await persisted.WriteStateAsync();
    }

    private async Task<CheckpointManifest> ReadManifestAsync(string optimizer, string checkpoint)
    {
        try
        {
            return await CheckpointManifest.ReadAsync(checkpointStore, optimizer, checkpoint);
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException)
        {
            throw new OptimizerFaultException(OptimizerFault.NotFound, e.Message);
        }
    }

    /// <summary>Keeps the newest <see cref="CheckpointOptions.KeepLast"/> complete checkpoints and removes older ones and leftovers of failed ones.</summary>
    private async Task ApplyRetentionAsync()
    {
        var complete = await CheckpointManifest.ListAsync(checkpointStore, Name);
        int keep = Math.Max(1, checkpointOptions.Value.KeepLast);
        foreach (string id in complete.Take(Math.Max(0, complete.Count - keep)))
        {
            await DeleteFilesAsync(id, manifestFirst: true);
        }

        // Folders without a manifest that are older than the newest checkpoint can never complete.
        string newest = complete.Count > 0 ? complete[^1] : string.Empty;
        var paths = await checkpointStore.ListAsync(Name + "/");
        foreach (string folder in paths.Select(p => p.Split('/')[1]).Distinct())
        {
            if (!complete.Contains(folder) && string.CompareOrdinal(folder, newest) < 0)
            {
                await DeleteFilesAsync(folder, manifestFirst: false);
            }
        }
    }

    private async Task DeleteFilesAsync(string checkpoint, bool manifestFirst)
    {
        string prefix = CheckpointManifest.FolderOf(Name, checkpoint) + "/";
        if (manifestFirst)
        {
            await checkpointStore.DeleteAsync(prefix + CheckpointManifest.FileName);
        }

        foreach (string path in await checkpointStore.ListAsync(prefix))
        {
            await checkpointStore.DeleteAsync(path);
        }
    }

    private static void CheckId(string checkpoint)
    {
        if (string.IsNullOrEmpty(checkpoint) || checkpoint.Contains('/') || checkpoint.Contains("..", StringComparison.Ordinal))
        {
            throw new OptimizerFaultException(OptimizerFault.InvalidArgument, $"Invalid checkpoint id '{checkpoint}': expected an id such as step-000000000120.");
        }
    }

    private static CheckpointInfo Info(CheckpointManifest manifest) =>
        new(manifest.Checkpoint, manifest.Step, manifest.CreatedUtc, manifest.Shards.Length, manifest.Shards.Sum(s => s.Bytes));

    [LoggerMessage(Level = LogLevel.Information, Message = "Optimizer {Optimizer} wrote checkpoint {Checkpoint} at step {Step}, {Bytes} bytes")]
    private static partial void LogCheckpointWritten(ILogger logger, string optimizer, string checkpoint, long step, long bytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Optimizer {Optimizer} failed to write checkpoint {Checkpoint}; it was not committed")]
    private static partial void LogCheckpointFailed(ILogger logger, Exception exception, string optimizer, string checkpoint);

    [LoggerMessage(Level = LogLevel.Information, Message = "Optimizer {Optimizer} restored checkpoint {Checkpoint} in place at step {Step}")]
    private static partial void LogRestoredInPlace(ILogger logger, string optimizer, string checkpoint, long step);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Optimizer {Optimizer} rolled back to checkpoint {Checkpoint} at step {Step}; {LostShards} shards had lost their values")]
    private static partial void LogRecovered(ILogger logger, string optimizer, string checkpoint, long step, int lostShards);

    [LoggerMessage(Level = LogLevel.Information, Message = "Optimizer {Optimizer} is waiting for its shards to answer during recovery: {Reason}")]
    private static partial void LogRecoveryWaiting(ILogger logger, string optimizer, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Optimizer {Optimizer} created from checkpoint {Checkpoint} of {Source} at step {Step} with {Shards} shards")]
    private static partial void LogCreatedFromCheckpoint(ILogger logger, string optimizer, string source, string checkpoint, long step, int shards);
}
