namespace Orleans.Optim.Wire;

/// <summary>A parameter as a client declares it.</summary>
/// <param name="Name">Name, or <see langword="null"/>.</param>
/// <param name="Shape">Sizes of each dimension.</param>
[GenerateSerializer, Immutable]
public sealed record ParameterSpecData([property: Id(0)] string? Name, [property: Id(1)] long[] Shape);

/// <summary>A param group as a client declares it.</summary>
/// <param name="Options">The group's own hyperparameters, encoded with <c>PythonBinary.EncodeOptions</c>.</param>
/// <param name="Parameters">The group's parameters in order.</param>
[GenerateSerializer, Immutable]
public sealed record ParamGroupSpecData([property: Id(0)] byte[] Options, [property: Id(1)] ParameterSpecData[] Parameters);

/// <summary>The request to create an optimizer.</summary>
[GenerateSerializer, Immutable]
public sealed record OptimizerSpecData
{
    /// <summary>Torch class name.</summary>
    [Id(0)] public required string Algorithm { get; init; }

    /// <summary>Constructor keyword arguments, encoded with <c>PythonBinary.EncodeOptions</c>.</summary>
    [Id(1)] public required byte[] DefaultOptions { get; init; }

    /// <summary>Param groups.</summary>
    [Id(2)] public required ParamGroupSpecData[] Groups { get; init; }

    /// <summary>Number of data-parallel workers.</summary>
    [Id(3)] public required int WorldSize { get; init; }

    /// <summary>Gradient reduction: 0 for mean, 1 for sum.</summary>
    [Id(4)] public required int Reduction { get; init; }

    /// <summary>Maximum number of elements per shard.</summary>
    [Id(5)] public required int MaxShardElements { get; init; }

    /// <summary>Whether a step with any non-finite reduced gradient is skipped on every shard.</summary>
    [Id(6)] public bool SkipNonFiniteSteps { get; init; }
}

/// <summary>Life cycle of an optimizer.</summary>
[GenerateSerializer]
public enum OptimizerStatus
{
    /// <summary>No optimizer with this name.</summary>
    None,

    /// <summary>Created; the shards are configured and wait for their initial values.</summary>
    Initializing,

    /// <summary>Every shard has its values; steps may run.</summary>
    Ready,
}

/// <summary>A parameter with its param ID and group.</summary>
[GenerateSerializer, Immutable]
public sealed record ParameterData(
    [property: Id(0)] long Id,
    [property: Id(1)] string? Name,
    [property: Id(2)] long[] Shape,
    [property: Id(3)] int GroupIndex);

/// <summary>One shard's slice of a parameter.</summary>
[GenerateSerializer, Immutable]
public sealed record ShardData(
    [property: Id(0)] int Index,
    [property: Id(1)] long ParamId,
    [property: Id(2)] long Offset,
    [property: Id(3)] int Length);

/// <summary>What a client needs to use an optimizer: its structure, shard map and current hyperparameters.</summary>
[GenerateSerializer, Immutable]
public sealed record OptimizerDescription
{
    /// <summary>Optimizer name.</summary>
    [Id(0)] public required string Name { get; init; }

    /// <summary>Life cycle status.</summary>
    [Id(1)] public required OptimizerStatus Status { get; init; }

    /// <summary>The spec it was created with.</summary>
    [Id(2)] public required OptimizerSpecData Spec { get; init; }

    /// <summary>Parameters by param ID.</summary>
    [Id(3)] public required ParameterData[] Parameters { get; init; }

    /// <summary>Shards by shard index.</summary>
    [Id(4)] public required ShardData[] Shards { get; init; }

    /// <summary>Torch's <c>optimizer.defaults</c>, encoded with <c>PythonBinary.EncodeOptions</c>.</summary>
    [Id(5)] public required byte[] Defaults { get; init; }

    /// <summary>Each group's current hyperparameters (without <c>params</c>), encoded with <c>PythonBinary.EncodeOptions</c>.</summary>
    [Id(6)] public required byte[][] Groups { get; init; }
}

/// <summary>What a shard needs to know about its slice, sent by the coordinator.</summary>
[GenerateSerializer, Immutable]
public sealed record ShardConfig
{
    /// <summary>Optimizer name.</summary>
    [Id(0)] public required string Optimizer { get; init; }

    /// <summary>The slice.</summary>
    [Id(1)] public required ShardData Shard { get; init; }

    /// <summary>Index of the parameter's group.</summary>
    [Id(2)] public required int GroupIndex { get; init; }

    /// <summary>Torch class name of the algorithm.</summary>
    [Id(3)] public required string Algorithm { get; init; }

    /// <summary>The group's hyperparameters, encoded with <c>PythonBinary.EncodeOptions</c>.</summary>
    [Id(4)] public required byte[] GroupOptions { get; init; }

    /// <summary>Number of data-parallel workers.</summary>
    [Id(5)] public required int WorldSize { get; init; }

    /// <summary>Gradient reduction: 0 for mean, 1 for sum.</summary>
    [Id(6)] public required int Reduction { get; init; }

    /// <summary>Steps the optimizer had applied when the shard was created: 0, or more for a group added later.</summary>
    [Id(7)] public long InitialStep { get; init; }

    /// <summary>Torch's <c>optimizer.defaults</c>, encoded with <c>PythonBinary.EncodeOptions</c>; Adagrad's initial state reads them.</summary>
    [Id(8)] public required byte[] Defaults { get; init; }

    /// <summary>Whether a step with any non-finite reduced gradient is skipped on every shard.</summary>
    [Id(9)] public bool SkipNonFiniteSteps { get; init; }

    /// <summary>
    /// Identity of the optimizer's history: new at every creation and restore, so that a step's verdict never counts
    /// a shard's report from before a rollback.
    /// </summary>
    [Id(10)] public Guid Timeline { get; init; }
}

/// <summary>A shard's progress.</summary>
/// <param name="Configured">Whether the coordinator configured it.</param>
/// <param name="HasValues">Whether it has parameter values.</param>
/// <param name="Step">Number of synchronous steps applied.</param>
/// <param name="Silo">Identity of the silo that hosts the shard, for diagnostics.</param>
/// <param name="PendingRanks">Ranks whose gradients for the next step have arrived, while that step waits for the others.</param>
[GenerateSerializer, Immutable]
public sealed record ShardStatus(
    [property: Id(0)] bool Configured,
    [property: Id(1)] bool HasValues,
    [property: Id(2)] long Step,
    [property: Id(3)] string Silo,
    [property: Id(4)] int[] PendingRanks);

/// <summary>A shard's values and state at one step, for a state dict.</summary>
/// <param name="Step">The step the snapshot was taken at.</param>
/// <param name="Values">Master values of the slice, raw float32 bytes.</param>
/// <param name="State">The slice's state encoded with <c>SliceStateBinary</c>; empty when it has none.</param>
/// <param name="OrderStep">First part of the state's order key.</param>
/// <param name="OrderPosition">Second part of the state's order key.</param>
[GenerateSerializer, Immutable]
public sealed record ShardSnapshot(
    [property: Id(0)] long Step,
    [property: Id(1)] byte[] Values,
    [property: Id(2)] byte[] State,
    [property: Id(3)] long OrderStep,
    [property: Id(4)] long OrderPosition);

/// <summary>A shard's part of a <c>load_state_dict</c>, staged until the coordinator commits it.</summary>
/// <param name="State">The slice's state encoded with <c>SliceStateBinary</c>; empty when the parameter has none.</param>
/// <param name="OrderStep">First part of the state's order key.</param>
/// <param name="OrderPosition">Second part of the state's order key.</param>
[GenerateSerializer, Immutable]
public sealed record ShardLoad(
    [property: Id(0)] byte[] State,
    [property: Id(1)] long OrderStep,
    [property: Id(2)] long OrderPosition);

/// <summary>A complete sharded checkpoint: one whose manifest was written.</summary>
/// <param name="Id">Checkpoint id, such as <c>step-000000000120</c>.</param>
/// <param name="Step">The step every shard was at.</param>
/// <param name="CreatedUtc">When its manifest was written, ISO 8601.</param>
/// <param name="Shards">Number of shard files.</param>
/// <param name="Bytes">Total size of the shard files.</param>
[GenerateSerializer, Immutable]
public sealed record CheckpointInfo(
    [property: Id(0)] string Id,
    [property: Id(1)] long Step,
    [property: Id(2)] string CreatedUtc,
    [property: Id(3)] int Shards,
    [property: Id(4)] long Bytes);

/// <summary>A shard's file in a checkpoint, as the shard reports it after writing.</summary>
/// <param name="File">Path in the checkpoint store.</param>
/// <param name="Sha256">SHA-256 of the file, lowercase hex.</param>
/// <param name="Bytes">Size in bytes.</param>
/// <param name="Step">The step the shard wrote.</param>
[GenerateSerializer, Immutable]
public sealed record ShardCheckpointResult(
    [property: Id(0)] string File,
    [property: Id(1)] string Sha256,
    [property: Id(2)] long Bytes,
    [property: Id(3)] long Step);

/// <summary>What a rebalance found and did.</summary>
/// <param name="ShardsPerSiloBefore">Shard counts per silo identity before the moves.</param>
/// <param name="Moved">Number of shards asked to migrate.</param>
[GenerateSerializer, Immutable]
public sealed record RebalanceResult(
    [property: Id(0)] Dictionary<string, int> ShardsPerSiloBefore,
    [property: Id(1)] int Moved);

/// <summary>A shard's answer to a gradient push once its synchronous step is done.</summary>
/// <param name="Values">
/// The slice's master values after the step. Every rank's reply shares one <see cref="SharedFloatSource"/> of the
/// slice's values, so that no rank's reply needs a copy of its own. The receiver copies the values out, unless the
/// codec read them straight into its <see cref="ReplyDestination"/>, and disposes of the payload.
/// </param>
/// <param name="Skipped">Whether the step was skipped on every shard because a reduced gradient was not finite.</param>
[GenerateSerializer, Immutable]
public sealed record StepReply([property: Id(0)] FloatPayload Values, [property: Id(1)] bool Skipped);

/// <summary>What every shard does with one attempt at a synchronous step.</summary>
public enum StepOutcome
{
    /// <summary>Apply the update.</summary>
    Apply,

    /// <summary>Count the step but leave the values and state as they are: a reduced gradient was not finite.</summary>
    Skip,

    /// <summary>Drop the gradients and stay at the previous step: a shard did not get every rank's gradient.</summary>
    Abandon,
}

/// <summary>The common verdict on one attempt at a synchronous step.</summary>
/// <param name="Outcome">What every shard does.</param>
/// <param name="Reason">Why the attempt was abandoned, for the ranks' error; <see langword="null"/> otherwise.</param>
[GenerateSerializer, Immutable]
public sealed record StepVerdict([property: Id(0)] StepOutcome Outcome, [property: Id(1)] string? Reason);
