using System.Text.Json.Serialization;

namespace Orleans.Optim.Cli.Training;

/// <summary>Settings of the digits training job; a checkpoint stores them so that a resumed run continues the same job.</summary>
public sealed record TrainSettings
{
    /// <summary>Number of data-parallel workers, each computing gradients on its part of every batch.</summary>
    [JsonPropertyName("workers")] public int Workers { get; init; } = 4;

    /// <summary>Total number of epochs; a resumed run continues up to this number.</summary>
    [JsonPropertyName("epochs")] public int Epochs { get; init; } = 20;

    /// <summary>Samples per synchronous step, over all workers.</summary>
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 64;

    /// <summary>Torch optimizer class name.</summary>
    [JsonPropertyName("optimizer")] public string Optimizer { get; init; } = "Adam";

    /// <summary>Learning rate; <see cref="DefaultLr"/> gives a rate that suits each optimizer on this task.</summary>
    [JsonPropertyName("lr")] public double Lr { get; init; } = 0.01;

    /// <summary>Weight decay, or <see langword="null"/> for the optimizer's default.</summary>
    [JsonPropertyName("weight_decay")] public double? WeightDecay { get; init; }

    /// <summary>Momentum (SGD), or <see langword="null"/> for the optimizer's default.</summary>
    [JsonPropertyName("momentum")] public double? Momentum { get; init; }

    /// <summary>Hidden layer width of the 64-H-10 MLP.</summary>
    [JsonPropertyName("hidden")] public int Hidden { get; init; } = Mlp.DefaultHiddenSize;

    /// <summary>Seed of the parameter initialisation and the per-epoch shuffles.</summary>
    [JsonPropertyName("seed")] public long Seed { get; init; }

    /// <summary>Learning-rate scheduler in torch's syntax without the optimizer, such as <c>StepLR(step_size=5, gamma=0.5)</c>, or <see langword="null"/>.</summary>
    [JsonPropertyName("scheduler")] public string? Scheduler { get; init; }

    /// <summary>When the scheduler steps: after every <c>epoch</c> (the torch convention for most schedulers) or every <c>step</c> (OneCycleLR).</summary>
    [JsonPropertyName("scheduler_interval")] public string SchedulerInterval { get; init; } = "epoch";

    /// <summary>
    /// Take a sharded checkpoint every this many steps, which a lost silo rolls the run back to; 0 turns them off, so
    /// a lost silo stops the run instead.
    /// </summary>
    [JsonPropertyName("sharded_checkpoint_every")] public int ShardedCheckpointEvery { get; init; }

    /// <summary>Maximum elements per shard.</summary>
    [JsonPropertyName("shard_size")] public int ShardSize { get; init; } = Layout.OptimizerSpec.DefaultMaxShardElements;

    /// <summary>
    /// Returns the learning rate the demo uses for an optimizer when <c>--lr</c> is not given: a value that reached
    /// at least 89% held-out accuracy in 20 epochs with the other defaults (README.md lists the results).
    /// </summary>
    public static double DefaultLr(string optimizer) => optimizer switch
    {
        "SGD" or "ASGD" => 0.1,
        "Adagrad" => 0.05,
        "RMSprop" or "Rprop" => 0.001,
        "Adadelta" => 1.0,
        _ => 0.01,
    };

    /// <summary>Checks the settings.</summary>
    /// <exception cref="ArgumentException">A setting is out of range; the message names it and the valid range.</exception>
    public void Validate()
    {
        Require(Workers >= 1, $"Invalid --workers {Workers}: expected at least 1.");
        Require(Epochs >= 1, $"Invalid --epochs {Epochs}: expected at least 1.");
        Require(BatchSize >= Workers, $"Invalid --batch-size {BatchSize}: expected at least one sample per worker ({Workers} workers).");
        Require(BatchSize <= 1497, $"Invalid --batch-size {BatchSize}: the training split has 1497 samples.");
        Require(Hidden is >= 1 and <= 4096, $"Invalid --hidden {Hidden}: expected 1 to 4096.");
        Require(double.IsFinite(Lr) && Lr >= 0, $"Invalid --lr {Lr}: expected a finite value >= 0.");
        Require(
            ShardSize is >= 1 and <= Layout.OptimizerSpec.MaxShardElementsLimit,
            $"Invalid --shard-size {ShardSize}: expected 1 to {Layout.OptimizerSpec.MaxShardElementsLimit} elements.");
        Require(ShardedCheckpointEvery >= 0, $"Invalid --sharded-checkpoint-every {ShardedCheckpointEvery}: expected 0 (off) or a number of steps.");
        Require(SchedulerInterval is "epoch" or "step", $"Invalid --scheduler-interval '{SchedulerInterval}': expected 'epoch' or 'step'.");
        if (Scheduler is not null)
        {
            try
            {
                Schedulers.SchedulerSpec.Parse(Scheduler);
            }
            catch (FormatException e)
            {
                throw new ArgumentException($"Invalid --scheduler: {e.Message}", e);
            }
        }
    }

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message);
        }
    }
}

/// <summary>Final figures of a training run, written by <c>--summary</c>.</summary>
public sealed record TrainingSummary
{
    /// <summary>Optimizer name in the cluster.</summary>
    [JsonPropertyName("optimizer_name")] public required string OptimizerName { get; init; }

    /// <summary>Torch optimizer class name.</summary>
    [JsonPropertyName("optimizer")] public required string Optimizer { get; init; }

    /// <summary>Epochs completed in total, including those before a resume.</summary>
    [JsonPropertyName("epochs")] public required int Epochs { get; init; }

    /// <summary>Synchronous steps completed in total.</summary>
    [JsonPropertyName("steps")] public required long Steps { get; init; }

    /// <summary>Mean training loss of the last epoch.</summary>
    [JsonPropertyName("train_loss")] public required double TrainLoss { get; init; }

    /// <summary>Held-out loss after the last epoch.</summary>
    [JsonPropertyName("held_out_loss")] public required double HeldOutLoss { get; init; }

    /// <summary>Held-out accuracy after the last epoch, from 0 to 1.</summary>
    [JsonPropertyName("held_out_accuracy")] public required double HeldOutAccuracy { get; init; }

    /// <summary>Wall-clock seconds of this run's training loop.</summary>
    [JsonPropertyName("seconds")] public required double Seconds { get; init; }

    /// <summary>Path of the last optimizer checkpoint (<c>.pt</c>).</summary>
    [JsonPropertyName("optimizer_checkpoint")] public required string OptimizerCheckpoint { get; init; }

    /// <summary>Path of the last model checkpoint (<c>.pt</c>).</summary>
    [JsonPropertyName("model_checkpoint")] public required string ModelCheckpoint { get; init; }

    /// <summary>Folder of the last checkpoint.</summary>
    [JsonPropertyName("checkpoint")] public required string Checkpoint { get; init; }
}
