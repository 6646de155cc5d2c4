using Orleans.Optim.Wire;

namespace Orleans.Optim.Grains;

/// <summary>
/// The coordinator of one named optimizer: keeps the param groups, assigns param IDs as torch does, keeps the shard
/// map, and fans requests out to the shards. Keyed by the optimizer name.
/// </summary>
public interface IOptimizerGrain : IGrainWithStringKey
{
    /// <summary>
    /// Creates the optimizer and configures its shards; a repeated call with the same spec returns the existing
    /// optimizer. The shards then wait for their initial values until <see cref="Activate"/>.
    /// </summary>
    /// <exception cref="OptimizerFaultException">The spec is invalid, or the name is taken by a different spec.</exception>
    Task<OptimizerDescription> Create(OptimizerSpecData spec);

    /// <summary>Checks that every shard has its values and marks the optimizer ready for steps.</summary>
    Task<OptimizerDescription> Activate();

    /// <summary>Returns the optimizer's structure and hyperparameters.</summary>
    /// <exception cref="OptimizerFaultException">No such optimizer.</exception>
    Task<OptimizerDescription> Describe();

    /// <summary>Returns the steps the shards have applied: the smallest and the largest.</summary>
    Task<(long Min, long Max)> GetStepRange();

    /// <summary>
    /// Sets <c>param_groups[group][key]</c> and sends the group's new hyperparameters to its shards; it takes effect
    /// from the next step.
    /// </summary>
    /// <param name="group">Group index.</param>
    /// <param name="key">Hyperparameter name.</param>
    /// <param name="value">New value, encoded with <c>PythonBinary.Encode</c>.</param>
    Task<OptimizerDescription> SetHyperparameter(int group, string key, byte[] value);

    /// <summary>
    /// Adds a param group with new parameters, as torch's <c>add_param_group</c>: the group takes the next param IDs,
    /// missing hyperparameters come from the defaults, and its shards start at the optimizer's current step. The new
    /// shards then wait for their initial values. Call it between steps.
    /// </summary>
    /// <param name="group">The group's own hyperparameters and its parameters.</param>
    Task<OptimizerDescription> AddParamGroup(ParamGroupSpecData group);

    /// <summary>
    /// Attaches a learning-rate scheduler, built against the param groups as torch's constructor does (adding
    /// <c>initial_lr</c> and setting the first <c>lr</c>), and sends the changed groups to the shards. A
    /// <see langword="null"/> spec detaches the current scheduler and leaves the groups as they are.
    /// </summary>
    /// <param name="spec">The scheduler spec's Python value tree, encoded with <c>PythonBinary.Encode</c>, or <see langword="null"/>.</param>
    Task<OptimizerDescription> SetScheduler(byte[]? spec);

    /// <summary>Runs the scheduler's <c>step()</c> and sends the changed hyperparameters to the shards; call it between optimizer steps.</summary>
    Task<OptimizerDescription> SchedulerStep();

    /// <summary>Returns the attached scheduler's spec and torch state dict, each encoded with <c>PythonBinary.Encode</c>, or nulls without a scheduler.</summary>
    Task<(byte[]? Spec, byte[]? State)> GetScheduler();

    /// <summary>Loads a torch scheduler state dict into the attached scheduler, as <c>scheduler.load_state_dict</c>.</summary>
    /// <param name="state">The state dict, encoded with <c>PythonBinary.Encode</c>.</param>
    Task LoadSchedulerState(byte[] state);

    /// <summary>
    /// Takes a sharded checkpoint at the current step: every shard writes its slice and state to the checkpoint
    /// store in parallel, then the coordinator writes the manifest last. Older checkpoints beyond the configured
    /// number to keep are deleted. Call it between steps.
    /// </summary>
    Task<CheckpointInfo> Checkpoint();

    /// <summary>Lists the complete checkpoints (those with a manifest), oldest first.</summary>
    Task<CheckpointInfo[]> ListCheckpoints();

    /// <summary>Deletes a checkpoint, its manifest first so that readers never see it half deleted.</summary>
    Task DeleteCheckpoint(string checkpoint);

    /// <summary>
    /// Restores every shard, the param groups and the scheduler from one of this optimizer's checkpoints, in place.
    /// </summary>
    /// <returns>The step the optimizer is at afterwards.</returns>
    Task<long> RestoreCheckpoint(string checkpoint);

    /// <summary>
    /// Checks that every shard has its values and all are at one step. If not (a silo died and its shards came back
    /// with older or no state), rolls the whole optimizer back to the newest complete checkpoint, which every shard
    /// holds durably. Never steps on from a mixed state.
    /// </summary>
    /// <returns>The step the optimizer is at afterwards; workers continue from the next one.</returns>
    /// <remarks>
    /// The call waits up to 5 minutes, whatever the client's response timeout, because the coordinator itself waits
    /// up to the silos' <c>Checkpoints:RecoveryTimeout</c> (default 2 minutes) for the shards of a dead silo.
    /// </remarks>
    [ResponseTimeout("00:05:00")]
    Task<long> Recover();

    /// <summary>
    /// Creates this optimizer from another optimizer's checkpoint, with the same hyperparameters, state and
    /// scheduler, at the checkpoint's step, and optionally another shard size (the checkpoint is resharded).
    /// </summary>
    /// <param name="sourceOptimizer">Name of the optimizer that wrote the checkpoint.</param>
    /// <param name="checkpoint">Checkpoint id.</param>
    /// <param name="maxShardElements">Shard size of the new optimizer, or <see langword="null"/> for the checkpoint's.</param>
    Task<OptimizerDescription> CreateFromCheckpoint(string sourceOptimizer, string checkpoint, int? maxShardElements);

    /// <summary>
    /// Moves shards so that every active silo holds an even share (counts differ by at most one), moving as few as
    /// possible; shards keep their exact state as they migrate. The coordinator also runs it when a silo joins.
    /// </summary>
    /// <returns>The shard counts per silo before the moves, and the number of shards moved.</returns>
    Task<RebalanceResult> Rebalance();

    /// <summary>
    /// Commits a <c>load_state_dict</c> whose shard parts were staged under <paramref name="loadId"/>: replaces the
    /// groups' hyperparameters and makes every shard swap in its staged state.
    /// </summary>
    /// <param name="loadId">The id the shard parts were staged under.</param>
    /// <param name="groups">Each group's loaded hyperparameters, encoded with <c>PythonBinary.EncodeOptions</c>.</param>
    Task<OptimizerDescription> CommitLoad(Guid loadId, byte[][] groups);
}

/// <summary>
/// One shard: a slice of one parameter with its fp32 master values and optimizer state. Keyed by
/// <c>{optimizer}/{shard index}</c>.
/// </summary>
public interface IShardGrain : IGrainWithStringKey
{
    /// <summary>Sets the slice and hyperparameters; called by the coordinator at creation.</summary>
    Task Configure(ShardConfig config);

    /// <summary>Replaces the slice's master values (raw float32 bytes), at creation or between steps.</summary>
    Task SetValues(byte[] values);

    /// <summary>Returns the shard's progress and host silo.</summary>
    Task<ShardStatus> GetStatus();

    /// <summary>
    /// Pushes rank <paramref name="rank"/>'s gradient for synchronous step <paramref name="step"/> and waits until
    /// every rank's gradient for that step has arrived and the update is applied.
    /// </summary>
    /// <param name="step">The step number, one more than the shard's applied steps.</param>
    /// <param name="rank">The worker's rank in <c>[0, world_size)</c>.</param>
    /// <param name="gradient">
    /// The slice's gradient, or an empty payload for no gradient (a slice has at least one element). A borrowed
    /// payload's elements must stay unchanged until its <see cref="FloatPayload.Released"/> completes. The shard takes
    /// or disposes of the payload it receives, and its reply carries the payload's <see cref="FloatPayload.ReplyToken"/>.
    /// </param>
    /// <returns>The slice's new master values, and whether the step was skipped for a non-finite gradient.</returns>
    /// <exception cref="OptimizerFaultException">The push breaks the step protocol, or the step timed out.</exception>
    Task<StepReply> Step(long step, int rank, FloatPayload gradient);

    /// <summary>Replaces the group's hyperparameters from the next step on; called by the coordinator.</summary>
    Task SetOptions(byte[] groupOptions);

    /// <summary>Returns the slice's values and state at its current step.</summary>
    Task<ShardSnapshot> Snapshot();

    /// <summary>
    /// Returns bytes <c>[offset, offset + count)</c> of the slice's float32 state tensors (the tensor entries in
    /// entry order, one after the other), clipped to their end, with the state's scalar entries and order key.
    /// </summary>
    /// <param name="expectedStep">The step the shard must be at, or <see cref="ShardStateChunk.AnyStep"/>.</param>
    /// <param name="offset">First byte, at most <see cref="ShardStateChunk.TotalBytes"/>.</param>
    /// <param name="count">Number of bytes, 0 to <see cref="ShardStateChunk.MaxBytes"/>; 0 returns only the header.</param>
    /// <exception cref="OptimizerFaultException">
    /// <see cref="OptimizerFault.Inconsistent"/> when the shard is at another step than <paramref name="expectedStep"/>,
    /// <see cref="OptimizerFault.InvalidArgument"/> for a range outside the state.
    /// </exception>
    Task<ShardStateChunk> ReadState(long expectedStep, long offset, int count);

    /// <summary>
    /// Reads state ranges of several shards of this shard's optimizer in one call, as <see cref="ReadState"/> does
    /// for each, and returns the replies in request order. A reader sends each batch to a shard on the silo where
    /// the batch's shards run, so that each forwarded read stays within that silo and the batch costs one round
    /// trip from the client instead of one per shard.
    /// </summary>
    /// <param name="expectedStep">The step every shard must be at, or <see cref="ShardStateChunk.AnyStep"/>.</param>
    /// <param name="requests">
    /// At most <see cref="ShardStateRequest.MaxBatch"/> ranges whose counts add up to at most
    /// <see cref="ShardStateChunk.MaxBytes"/>.
    /// </param>
    /// <exception cref="OptimizerFaultException">A shard's read failed as <see cref="ReadState"/> lists, or the batch is too large.</exception>
    Task<ShardStateChunk[]> ReadStates(long expectedStep, ShardStateRequest[] requests);

    /// <summary>Stages this shard's part of a <c>load_state_dict</c>; nothing changes until <see cref="CommitLoad"/>.</summary>
    Task StageLoad(Guid loadId, ShardLoad load);

    /// <summary>Swaps in the state staged under <paramref name="loadId"/> with the loaded group's hyperparameters.</summary>
    Task CommitLoad(Guid loadId, byte[] groupOptions);

    /// <summary>Drops the state staged under <paramref name="loadId"/>.</summary>
    Task AbortLoad(Guid loadId);

    /// <summary>Migrates the shard to <paramref name="silo"/> when it is next idle, with its exact state.</summary>
    Task MoveTo(SiloAddress silo);

    /// <summary>Writes the slice and its state to a checkpoint, failing when the shard is not at <paramref name="expectedStep"/>.</summary>
    Task<ShardCheckpointResult> WriteCheckpoint(string checkpoint, long expectedStep);

    /// <summary>
    /// Reads and checks what a checkpoint holds for this shard's element range (from any shard size) and stages it;
    /// nothing changes until <see cref="CommitRestore"/>.
    /// </summary>
    /// <param name="manifest">The checkpoint's manifest, as JSON.</param>
    /// <param name="groupOptions">The group's hyperparameters, encoded with <c>PythonBinary.EncodeOptions</c>.</param>
    Task StageRestore(byte[] manifest, byte[] groupOptions);

    /// <summary>
    /// Replaces the slice, its state, step and hyperparameters with the staged checkpoint. A step collecting
    /// gradients fails with a rolled-back error.
    /// </summary>
    /// <param name="checkpoint">The staged checkpoint.</param>
    /// <param name="timeline">The optimizer's new <see cref="ShardConfig.Timeline"/>.</param>
    Task CommitRestore(string checkpoint, Guid timeline);

    /// <summary>Drops a staged checkpoint.</summary>
    Task AbortRestore(string checkpoint);

    /// <summary>
    /// Drops the gradients collected for <paramref name="attempt"/> at <paramref name="step"/>, failing the waiting
    /// ranks with <paramref name="reason"/>, because another shard abandoned that attempt.
    /// </summary>
    Task AbandonStep(long step, int attempt, Guid timeline, string reason);
}

/// <summary>
/// Gives every shard of an optimizer the same verdict for one attempt at a synchronous step: apply it, skip it (a
/// non-finite gradient with <c>SkipNonFiniteSteps</c>), or abandon it because a shard is missing a rank's gradient.
/// Keyed by the optimizer name.
/// </summary>
/// <remarks>
/// A worker that dies while it pushes its gradients reaches only some shards. Without a common verdict the shards
/// that got every gradient would apply the step and the others would time out, leaving the shards at different steps.
/// An attempt is numbered per step: each abandoned attempt raises it by one on every shard.
/// </remarks>
public interface IStepVerdictGrain : IGrainWithStringKey
{
    /// <summary>
    /// Reports that shard <paramref name="shardIndex"/> has every rank's gradient for <paramref name="step"/>, and
    /// whether its reduced gradient is finite, then waits until every shard reported or one abandoned the attempt.
    /// </summary>
    Task<StepVerdict> Vote(long step, int attempt, Guid timeline, int shardIndex, bool finite);

    /// <summary>
    /// Abandons the attempt because shard <paramref name="shardIndex"/> timed out: tells every shard, then gives
    /// <paramref name="reason"/> to the shards that wait for the verdict.
    /// </summary>
    Task Abandon(long step, int attempt, Guid timeline, int shardIndex, string reason);

    /// <summary>
    /// Sets the number of shards that must report before a step is applied, whenever the coordinator changes the
    /// layout (creation, an added param group, a restore). Without it the grain asks the coordinator.
    /// </summary>
    Task SetShardCount(Guid timeline, int shardCount);
}
