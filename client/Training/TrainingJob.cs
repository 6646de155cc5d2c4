using System.Diagnostics;
using System.Globalization;
using Orleans.Optim.Client;
using Orleans.Optim.Layout;

namespace Orleans.Optim.Cli.Training;

/// <summary>The cluster failed during training; the message names the checkpoint to resume from.</summary>
public sealed class TrainingInterruptedException(string message, Exception innerException) : Exception(message, innerException);

/// <summary>
/// The data-parallel training job: several workers each compute gradients on their part of every batch of the
/// digits data set and step one cluster-held optimizer, which returns the new parameters to all of them.
/// </summary>
public sealed class TrainingJob(IGrainFactory grains, TextWriter output, TextWriter progress, bool interactive)
{
    /// <summary>Most rollbacks one run makes before it gives up.</summary>
    public const int MaxRecoveries = 5;

    /// <summary>Maximum number of attempts of one recovery while the cluster detects a dead silo.</summary>
    private const int RecoveryAttempts = 10;

    /// <summary>Runs the job.</summary>
    /// <param name="settings">The run's settings; on resume, the checkpoint's settings with the new epoch count.</param>
    /// <param name="optimizerName">Name of the cluster optimizer to create.</param>
    /// <param name="checkpointDirectory">Folder that receives <c>epoch-NNNN</c> checkpoints.</param>
    /// <param name="checkpointEvery">Write a checkpoint every this many epochs, and always after the last.</param>
    /// <param name="resumeFrom">Checkpoint folder to continue from, or <see langword="null"/> to start fresh.</param>
    /// <param name="overrides">Hyperparameters that replace the checkpoint's after loading it, such as a new <c>lr</c>.</param>
    /// <param name="cancellationToken">Stops after the current step.</param>
    /// <exception cref="TrainingInterruptedException">The cluster failed during training; the message names the checkpoint to resume from.</exception>
    public async Task<TrainingSummary> RunAsync(
        TrainSettings settings,
        string optimizerName,
        string checkpointDirectory,
        int checkpointEvery,
        string? resumeFrom,
        IReadOnlyList<KeyValuePair<string, object?>> overrides,
        CancellationToken cancellationToken)
    {
        settings.Validate();
        var dataset = DigitsDataset.LoadEmbedded();
        var mlp = new Mlp(settings.Hidden);

        int startEpoch = 0;
        long steps = 0;
        float[][] parameters = mlp.InitializeParameters(settings.Seed);
        Orleans.Optim.StateDicts.OptimizerStateDict? resumeState = null;
        if (resumeFrom is not null)
        {
            var checkpoint = TrainingCheckpoint.Read(resumeFrom);
            startEpoch = checkpoint.Epoch;
            steps = checkpoint.Steps;
            parameters = TrainingCheckpoint.ReadModel(resumeFrom, mlp.Parameters);
            resumeState = Orleans.Optim.Formats.Pt.StateDictFiles.ReadOptimizer(Path.Combine(resumeFrom, TrainingCheckpoint.OptimizerFile));
            output.WriteLine($"Resuming from {resumeFrom}: epoch {startEpoch}, step {steps}.");
        }

        var spec = BuildSpec(settings, mlp);
        var workers = new ClusterOptimizer[settings.Workers];
        workers[0] = await ClusterOptimizer.CreateAsync(grains, optimizerName, spec, parameters, cancellationToken);
        // torch's resume order: construct the scheduler (it sets the first lr), load the optimizer's state dict (which
        // restores the groups as they were saved), then load the scheduler's state dict.
        if (settings.Scheduler is not null)
        {
            await workers[0].SetSchedulerAsync(Schedulers.SchedulerSpec.Parse(settings.Scheduler));
        }

        if (resumeState is not null)
        {
            await workers[0].LoadStateDictAsync(resumeState);
            if (settings.Scheduler is not null)
            {
                string schedulerFile = Path.Combine(resumeFrom!, TrainingCheckpoint.SchedulerFile);
                if (!File.Exists(schedulerFile))
                {
                    throw new FileNotFoundException($"The checkpoint {resumeFrom} has no {TrainingCheckpoint.SchedulerFile} for --scheduler {settings.Scheduler}.", schedulerFile);
                }

                await workers[0].LoadSchedulerAsync(schedulerFile);
            }

            foreach (var (key, value) in overrides)
            {
                await workers[0].SetHyperparameterAsync(0, key, value);
                output.WriteLine($"param_groups[0]['{key}'] = {Orleans.Optim.Python.PythonValues.Format(value)} (given on the command line)");
            }
        }

        for (int rank = 1; rank < settings.Workers; rank++)
        {
            workers[rank] = await ClusterOptimizer.AttachAsync(grains, optimizerName, cancellationToken: cancellationToken);
        }

        var statuses = await workers[0].GetShardStatusesAsync();
        output.WriteLine(
            $"Optimizer '{optimizerName}': {settings.Optimizer}, {spec.Groups[0].Parameters.Count} parameters in {statuses.Count} shards " +
            $"on {statuses.Select(s => s.Silo).Distinct().Count()} silo(s), {settings.Workers} workers, batch {settings.BatchSize}.");
        if (settings.Scheduler is not null)
        {
            output.WriteLine($"Scheduler {settings.Scheduler}, stepped every {settings.SchedulerInterval}.");
        }

        int batchCount = dataset.GetBatchCount(settings.BatchSize);
        long totalSteps = (long)settings.Epochs * batchCount;
        var clock = Stopwatch.StartNew();
        var epochClock = Stopwatch.StartNew();
        var batchLoss = new double[batchCount];
        double trainLoss = 0;
        (float Loss, float Accuracy) heldOut = (0, 0);
        string lastCheckpoint = "";
        int recoveries = 0;
        var batchInputs = new float[settings.BatchSize * DigitsDataset.FeatureCount];
        var batchLabels = new int[settings.BatchSize];
        int[] order = [];
        int orderEpoch = -1;

        // The loop counts completed synchronous steps, so that a rollback to a checkpoint can set it back and the data
        // of every later step, which depends only on the seed and the step, is replayed exactly.
        while (steps < totalSteps)
        {
            int epoch = (int)(steps / batchCount);
            int batch = (int)(steps % batchCount);
            if (epoch != orderEpoch)
            {
                order = dataset.GetEpochOrder(settings.Seed, epoch);
                orderEpoch = epoch;
            }

            if (batch == 0)
            {
                epochClock.Restart();
            }

            try
            {
                dataset.CopyTrainBatch(order, batch, batchInputs, batchLabels);
                (batchLoss[batch], parameters) = await RunStepAsync(workers, mlp, settings, batchInputs, batchLabels, parameters, cancellationToken);
                steps++;
                ShowProgress(epoch, settings.Epochs, batch + 1, batchCount);
                if (settings.Scheduler is not null && settings.SchedulerInterval == "step")
                {
                    await workers[0].SchedulerStepAsync();
                }

                // Epoch-end work comes before the sharded checkpoint of the same step, so that a rollback to that
                // checkpoint does not skip it.
                if (steps % batchCount == 0)
                {
                    if (settings.Scheduler is not null && settings.SchedulerInterval == "epoch")
                    {
                        await workers[0].SchedulerStepAsync();
                    }

                    trainLoss = batchLoss.Average();
                    heldOut = mlp.Evaluate(parameters, dataset.HeldOut.Inputs, dataset.HeldOut.Labels);
                    ReportEpoch(workers[0], settings, epoch, trainLoss, heldOut, batchCount / epochClock.Elapsed.TotalSeconds);
                    if (epoch + 1 == settings.Epochs || (checkpointEvery > 0 && (epoch + 1) % checkpointEvery == 0))
                    {
                        var checkpoint = new TrainingCheckpoint { Epoch = epoch + 1, Steps = steps, Settings = settings, HeldOutAccuracy = heldOut.Accuracy };
                        var schedulerState = settings.Scheduler is null ? null : await workers[0].SchedulerStateDictAsync();
                        lastCheckpoint = checkpoint.Write(checkpointDirectory, await workers[0].StateDictAsync(), mlp.Parameters, parameters, schedulerState);
                        output.WriteLine($"checkpoint {lastCheckpoint}");
                    }
                }

                if (settings.ShardedCheckpointEvery > 0 && steps % settings.ShardedCheckpointEvery == 0)
                {
                    await workers[0].CheckpointAsync();
                }
            }
            catch (Exception e) when (IsClusterFailure(e) && settings.ShardedCheckpointEvery > 0 && recoveries < MaxRecoveries)
            {
                recoveries++;
                ClearProgress();
                output.WriteLine($"step {steps + 1} failed: {e.Message.Split('\n')[0].Trim()}");
                output.WriteLine("recovering: waiting for the cluster to bring the lost shards back, then rolling back to the newest sharded checkpoint");
                var recoveryClock = Stopwatch.StartNew();
                (long resumeStep, parameters) = await RecoverWithRetriesAsync(workers, cancellationToken);
                output.WriteLine($"rolled back to step {resumeStep} after {recoveryClock.Elapsed.TotalSeconds:0.0} s; {steps - resumeStep} steps to redo");
                steps = resumeStep;
            }
            catch (Exception e) when (IsClusterFailure(e))
            {
                throw Interrupted(e, epoch, steps, lastCheckpoint, resumeFrom);
            }
        }

        if (lastCheckpoint.Length == 0)
        {
            throw new ArgumentException($"Nothing to train: the checkpoint is already at epoch {startEpoch} and --epochs is {settings.Epochs}. Raise --epochs to continue.");
        }

        return new TrainingSummary
        {
            OptimizerName = optimizerName,
            Optimizer = settings.Optimizer,
            Epochs = settings.Epochs,
            Steps = steps,
            TrainLoss = trainLoss,
            HeldOutLoss = heldOut.Loss,
            HeldOutAccuracy = heldOut.Accuracy,
            Seconds = clock.Elapsed.TotalSeconds,
            Checkpoint = Path.GetFullPath(lastCheckpoint),
            OptimizerCheckpoint = Path.GetFullPath(Path.Combine(lastCheckpoint, TrainingCheckpoint.OptimizerFile)),
            ModelCheckpoint = Path.GetFullPath(Path.Combine(lastCheckpoint, TrainingCheckpoint.ModelFile)),
        };
    }

    /// <summary>Runs one synchronous step of every worker on its part of the batch and returns the batch loss and the new parameters.</summary>
    private static async Task<(double Loss, float[][] Parameters)> RunStepAsync(
        ClusterOptimizer[] workers, Mlp mlp, TrainSettings settings, float[] batchInputs, int[] batchLabels, float[][] parameters, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var results = await Task.WhenAll(Enumerable.Range(0, settings.Workers).Select(rank => Task.Run(async () =>
        {
            var (loss, gradients) = mlp.ComputeWorkerGradients(parameters, batchInputs, batchLabels, rank, settings.Workers);
            var updated = await workers[rank].StepAsync(rank, gradients, cancellationToken);
            return (loss, updated);
        })));

        // The workers' losses are scaled so that their mean is the batch loss.
        return (results.Average(r => r.loss), results[0].updated);
    }

    private void ReportEpoch(ClusterOptimizer optimizer, TrainSettings settings, int epoch, double trainLoss, (float Loss, float Accuracy) heldOut, double stepsPerSecond)
    {
        ClearProgress();
        string lrText = settings.Scheduler is null ? string.Empty : "  lr " + Orleans.Optim.Python.PythonValues.Format(optimizer.ParamGroups[0]["lr"]);
        output.WriteLine(string.Format(
            CultureInfo.InvariantCulture,
            "epoch {0,3}/{1}  train loss {2:0.0000}  held-out loss {3:0.0000}  held-out accuracy {4:0.00}%  {5:0.0} steps/s{6}",
            epoch + 1,
            settings.Epochs,
            trainLoss,
            heldOut.Loss,
            heldOut.Accuracy * 100,
            stepsPerSecond,
            lrText));
    }

    /// <summary>
    /// Rolls the coordinator back, brings every worker to the same step and reads the parameters there, retrying the
    /// whole sequence while the cluster has not yet declared the lost silo dead. A retry is safe: once every shard is
    /// at one step, Recover returns that step and changes nothing.
    /// </summary>
    private async Task<(long Step, float[][] Parameters)> RecoverWithRetriesAsync(ClusterOptimizer[] workers, CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                long step = await workers[0].RecoverAsync();
                for (int rank = 1; rank < workers.Length; rank++)
                {
                    await workers[rank].RecoverAsync();
                }

                return (step, await workers[0].GetParametersAsync());
            }
            catch (Exception e) when (IsClusterFailure(e) && attempt < RecoveryAttempts)
            {
                output.WriteLine($"recovery attempt {attempt} failed: {DescribeFailure(e)}; trying again");
                await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
            }
        }
    }

    /// <summary>Describes a failed cluster call in one line, without the Orleans message dump of a timeout.</summary>
    private static string DescribeFailure(Exception e) => e is TimeoutException
        ? "no response within the response timeout, as when the cluster has not yet declared the lost silo dead"
        : e.Message.Split('\n')[0].Trim();

    private static bool IsClusterFailure(Exception e) => e is TimeoutException or OrleansException or Orleans.Optim.Wire.OptimizerFaultException;

    private TrainingInterruptedException Interrupted(Exception e, int epoch, long steps, string lastCheckpoint, string? resumeFrom)
    {
        ClearProgress();
        string hint = lastCheckpoint.Length > 0
            ? $"Restart the missing silo(s) and resume with --resume {lastCheckpoint}."
            : resumeFrom is not null
                ? $"Restart the missing silo(s) and resume with --resume {resumeFrom}."
                : "No checkpoint was written yet; restart the missing silo(s) and start again.";
        return new TrainingInterruptedException($"Training stopped in epoch {epoch + 1} after step {steps}: {e.Message.Split('\n')[0].Trim()} {hint}", e);
    }

    /// <summary>Builds the optimizer spec: one param group with the model's named parameters.</summary>
    public static OptimizerSpec BuildSpec(TrainSettings settings, Mlp mlp)
    {
        var options = new List<KeyValuePair<string, object?>> { new("lr", settings.Lr) };
        if (settings.WeightDecay is { } weightDecay)
        {
            options.Add(new("weight_decay", weightDecay));
        }

        if (settings.Momentum is { } momentum)
        {
            options.Add(new("momentum", momentum));
        }

        return new OptimizerSpec
        {
            Algorithm = settings.Optimizer,
            DefaultOptions = options,
            Groups = [new ParamGroupSpec([], mlp.Parameters.Select(p => new ParameterSpec(p.Name, p.Shape.ToArray())).ToList())],
            WorldSize = settings.Workers,
            MaxShardElements = settings.ShardSize,
        };
    }

    private void ShowProgress(int epoch, int epochs, int batch, int batchCount)
    {
        if (!interactive)
        {
            return;
        }

        const int width = 30;
        int filled = batch * width / batchCount;
        progress.Write($"\repoch {epoch + 1,3}/{epochs} [{new string('#', filled)}{new string('.', width - filled)}] {batch}/{batchCount}");
    }

    private void ClearProgress()
    {
        if (interactive)
        {
            progress.Write("\r" + new string(' ', 60) + "\r");
        }
    }
}
