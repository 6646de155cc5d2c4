using Orleans.Optim.Wire;

namespace Orleans.Optim.Coordinator;

/// <summary>What the coordinator keeps in grain storage.</summary>
[GenerateSerializer]
public sealed class OptimizerGrainState
{
    /// <summary>Life cycle status.</summary>
    [Id(0)] public OptimizerStatus Status { get; set; }

    /// <summary>The current spec: the one the optimizer was created with, plus every group added since.</summary>
    [Id(1)] public OptimizerSpecData? Spec { get; set; }

    /// <summary>Torch's <c>optimizer.defaults</c>, encoded.</summary>
    [Id(2)] public byte[] Defaults { get; set; } = [];

    /// <summary>Each group's hyperparameters (without <c>params</c>), encoded.</summary>
    [Id(3)] public byte[][] Groups { get; set; } = [];

    /// <summary>The spec the optimizer was created with, to tell a repeated create from a conflicting one.</summary>
    [Id(4)] public OptimizerSpecData? CreatedSpec { get; set; }

    /// <summary>The attached learning-rate scheduler's spec, encoded with <c>PythonBinary.Encode</c>, or <see langword="null"/>.</summary>
    [Id(5)] public byte[]? Scheduler { get; set; }

    /// <summary>The scheduler's torch state dict, encoded with <c>PythonBinary.Encode</c>, or <see langword="null"/>.</summary>
    [Id(6)] public byte[]? SchedulerState { get; set; }

    /// <summary>The shards' current <see cref="Wire.ShardConfig.Timeline"/>: new at creation and at every restore.</summary>
    [Id(7)] public Guid Timeline { get; set; }
}
