using System.CommandLine;
using System.Text.Json;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Cli.Training;
using Orleans.Optim.Client;

namespace Orleans.Optim.Cli.Commands;

/// <summary><c>client train</c>: the data-parallel training job on the digits data set.</summary>
public static class TrainCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create()
    {
        var defaults = new TrainSettings();
        var workers = new Option<int>("--workers") { Description = "Number of data-parallel workers.", DefaultValueFactory = _ => defaults.Workers };
        var epochs = new Option<int>("--epochs") { Description = "Total number of epochs (a resumed run continues up to it).", DefaultValueFactory = _ => defaults.Epochs };
        var batchSize = new Option<int>("--batch-size") { Description = "Samples per synchronous step, over all workers.", DefaultValueFactory = _ => defaults.BatchSize };
        var optimizer = new Option<string>("--optimizer")
        {
            Description = "Torch optimizer class: " + string.Join(", ", OptimizerAlgorithms.Names) + ".",
            DefaultValueFactory = _ => defaults.Optimizer,
        };
        var lr = new Option<double>("--lr") { Description = "Learning rate (default: one that suits the optimizer on this task, 0.01 for Adam)." };
        var weightDecay = new Option<double?>("--weight-decay") { Description = "Weight decay (default: the optimizer's own)." };
        var momentum = new Option<double?>("--momentum") { Description = "Momentum, for SGD and RMSprop (default: the optimizer's own)." };
        var hidden = new Option<int>("--hidden") { Description = "Hidden layer width of the 64-H-10 MLP.", DefaultValueFactory = _ => defaults.Hidden };
        var seed = new Option<long>("--seed") { Description = "Seed of the initial parameters and the per-epoch shuffles.", DefaultValueFactory = _ => defaults.Seed };
        var shardSize = new Option<int>("--shard-size") { Description = "Maximum elements per shard; larger parameters are split.", DefaultValueFactory = _ => defaults.ShardSize };
        var checkpointDir = new Option<string>("--checkpoint-dir") { Description = "Folder for epoch-NNNN checkpoints (optimizer.pt, model.pt, checkpoint.json).", DefaultValueFactory = _ => Path.Combine("runs", "digits") };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Write a checkpoint every N epochs (0: only at the end).", DefaultValueFactory = _ => 5 };
        var resume = new Option<string?>("--resume") { Description = "Continue from a checkpoint folder, or from the latest checkpoint in a run folder." };
        var summary = new Option<string?>("--summary") { Description = "Write the final figures as JSON to this file." };
        var name = new Option<string?>("--name") { Description = "Optimizer name in the cluster; it must not exist yet (default: digits-<time>)." };
        var scheduler = new Option<string?>("--scheduler")
        {
            Description = "Learning-rate scheduler in torch's syntax without the optimizer, such as \"StepLR(step_size=5, gamma=0.5)\". Supported: "
                + string.Join(", ", Orleans.Optim.Schedulers.LRSchedulers.Names) + ".",
        };
        var schedulerInterval = new Option<string>("--scheduler-interval")
        {
            Description = "When the scheduler steps: after every 'epoch', or every 'step' (for OneCycleLR).",
            DefaultValueFactory = _ => "epoch",
        };
        var shardedCheckpointEvery = new Option<int>("--sharded-checkpoint-every")
        {
            Description = "Take a sharded checkpoint every N steps; a lost silo then rolls the run back to the newest one instead of stopping it (0: off).",
        };
        var overwrite = new Option<bool>("--overwrite") { Description = "Delete the checkpoints already in --checkpoint-dir before a fresh run." };
        var cluster = new ClusterOptions();

        var command = new Command("train", "Train an MLP (64 inputs, --hidden units, 10 classes) on the digits data set with data-parallel workers and a cluster-held optimizer.")
        {
            workers, epochs, batchSize, optimizer, lr, weightDecay, momentum, hidden, seed, shardSize, checkpointDir, checkpointEvery, resume, summary, name, overwrite, scheduler, schedulerInterval, shardedCheckpointEvery,
        };
        cluster.AddTo(command);

        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var settings = new TrainSettings
            {
                Workers = parseResult.GetValue(workers),
                Epochs = parseResult.GetValue(epochs),
                BatchSize = parseResult.GetValue(batchSize),
                Optimizer = parseResult.GetValue(optimizer)!,
                Lr = IsGiven(parseResult, lr) ? parseResult.GetValue(lr) : TrainSettings.DefaultLr(parseResult.GetValue(optimizer)!),
                WeightDecay = parseResult.GetValue(weightDecay),
                Momentum = parseResult.GetValue(momentum),
                Hidden = parseResult.GetValue(hidden),
                Seed = parseResult.GetValue(seed),
                ShardSize = parseResult.GetValue(shardSize),
                Scheduler = parseResult.GetValue(scheduler),
                ShardedCheckpointEvery = parseResult.GetValue(shardedCheckpointEvery),
                SchedulerInterval = parseResult.GetValue(schedulerInterval)!,
            };

            string checkpointDirectory = parseResult.GetValue(checkpointDir)!;
            string? resumeFrom = parseResult.GetValue(resume);
            var overrides = new List<KeyValuePair<string, object?>>();
            int resumedEpoch = 0;
            string? resumedRunFolder = null;
            if (resumeFrom is not null)
            {
                resumeFrom = TrainingCheckpoint.Locate(resumeFrom);
                resumedRunFolder = Path.GetDirectoryName(Path.GetFullPath(resumeFrom))!;
                if (!IsGiven(parseResult, checkpointDir))
                {
                    // A resumed run writes its checkpoints next to the one it continues, not into the default folder.
                    checkpointDirectory = resumedRunFolder;
                }

                var checkpoint = TrainingCheckpoint.Read(resumeFrom);
                var saved = checkpoint.Settings;
                resumedEpoch = checkpoint.Epoch;
                CheckResumeOption(parseResult, workers, settings.Workers, saved.Workers);
                CheckResumeOption(parseResult, batchSize, settings.BatchSize, saved.BatchSize);
                CheckResumeOption(parseResult, optimizer, settings.Optimizer, saved.Optimizer);
                CheckResumeOption(parseResult, hidden, settings.Hidden, saved.Hidden);
                CheckResumeOption(parseResult, seed, settings.Seed, saved.Seed);
                CheckResumeOption(parseResult, scheduler, settings.Scheduler, saved.Scheduler);
                CheckResumeOption(parseResult, schedulerInterval, settings.SchedulerInterval, saved.SchedulerInterval);

                // Hyperparameters given with --resume replace the checkpoint's after loading, as setting
                // param_groups[0]['lr'] after load_state_dict does in torch; the shard size may change freely.
                settings = saved with
                {
                    Epochs = IsGiven(parseResult, epochs) ? settings.Epochs : saved.Epochs,
                    Lr = IsGiven(parseResult, lr) ? settings.Lr : saved.Lr,
                    WeightDecay = IsGiven(parseResult, weightDecay) ? settings.WeightDecay : saved.WeightDecay,
                    Momentum = IsGiven(parseResult, momentum) ? settings.Momentum : saved.Momentum,
                    ShardSize = IsGiven(parseResult, shardSize) ? settings.ShardSize : saved.ShardSize,
                    ShardedCheckpointEvery = IsGiven(parseResult, shardedCheckpointEvery) ? settings.ShardedCheckpointEvery : saved.ShardedCheckpointEvery,
                };
                if (IsGiven(parseResult, lr))
                {
                    overrides.Add(new("lr", settings.Lr));
                }

                if (IsGiven(parseResult, weightDecay))
                {
                    overrides.Add(new("weight_decay", settings.WeightDecay));
                }

                if (IsGiven(parseResult, momentum))
                {
                    overrides.Add(new("momentum", settings.Momentum));
                }
            }

            settings.Validate();
            CheckOptimizerOptions(settings);
            if (resumeFrom is not null && resumedEpoch >= settings.Epochs)
            {
                // Checked before any cluster starts, so that nothing is created for a run with no work.
                throw new ArgumentException(
                    $"Nothing to train: the checkpoint is already at epoch {resumedEpoch} and --epochs is {settings.Epochs}. Raise --epochs to continue.");
            }

            if (parseResult.GetValue(name) is { } givenName && Orleans.Optim.Grains.ShardKeys.Validate(givenName) is { } nameError)
            {
                throw new ArgumentException(nameError.Replace("Invalid optimizer name", "Invalid --name", StringComparison.Ordinal));
            }

            int every = parseResult.GetValue(checkpointEvery);
            if (every < 0)
            {
                throw new ArgumentException($"Invalid --checkpoint-every {every}: expected 0 or more epochs.");
            }

            // A resumed run may write into its own run folder; any other folder must not hold another run's checkpoints.
            bool ownRunFolder = resumedRunFolder is not null
                && string.Equals(Path.GetFullPath(checkpointDirectory).TrimEnd(Path.DirectorySeparatorChar), resumedRunFolder, StringComparison.Ordinal);
            PrepareCheckpointDirectory(checkpointDirectory, fresh: !ownRunFolder, parseResult.GetValue(overwrite));
            string? summaryPath = parseResult.GetValue(summary);
            if (summaryPath is not null && Path.GetDirectoryName(Path.GetFullPath(summaryPath)) is { } summaryFolder)
            {
                Directory.CreateDirectory(summaryFolder);
            }

            string optimizerName = parseResult.GetValue(name) ?? $"digits-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..6]}";
            await using var connection = await cluster.ConnectAsync(parseResult, Console.Out, Path.Combine(checkpointDirectory, "sharded"));
            if (await ClusterOptimizer.ExistsAsync(connection.Client, optimizerName))
            {
                throw new CommandException(
                    $"Optimizer '{optimizerName}' already exists in the cluster; a training run needs a fresh one. Choose another --name, or continue a run with --resume.");
            }

            var job = new TrainingJob(connection.Client, Console.Out, Console.Error, interactive: !Console.IsErrorRedirected);
            var result = await job.RunAsync(settings, optimizerName, checkpointDirectory, every, resumeFrom, overrides, cancellationToken);

            Console.WriteLine(
                $"done: {result.Epochs} epochs, {result.Steps} steps, held-out accuracy {result.HeldOutAccuracy * 100:0.00}% in {result.Seconds:0.0} s");
            Console.WriteLine($"optimizer state: {result.OptimizerCheckpoint}");
            Console.WriteLine($"model parameters: {result.ModelCheckpoint}");
            if (summaryPath is not null)
            {
                File.WriteAllText(summaryPath, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
            }

            return 0;
        });
        return command;
    }

    private static bool IsGiven(ParseResult parseResult, Option option) => parseResult.GetResult(option) is { Implicit: false };

    private static void CheckOptimizerOptions(TrainSettings settings)
    {
        var algorithm = OptimizerAlgorithms.Get(settings.Optimizer);
        if (settings.Momentum is not null && !algorithm.Defaults.Any(d => d.Key == "momentum"))
        {
            throw new ArgumentException($"Invalid --momentum for --optimizer {settings.Optimizer}: it has no momentum. Drop --momentum, or use an optimizer that has one, such as SGD.");
        }

        if (settings.WeightDecay is { } weightDecay && !(weightDecay >= 0))
        {
            throw new ArgumentException($"Invalid --weight-decay {weightDecay}: expected a value >= 0.");
        }

        if (settings.Momentum is { } momentum && !(momentum >= 0))
        {
            throw new ArgumentException($"Invalid --momentum {momentum}: expected a value >= 0.");
        }
    }

    private static void PrepareCheckpointDirectory(string directory, bool fresh, bool overwrite)
    {
        if (File.Exists(directory))
        {
            throw new ArgumentException($"Invalid --checkpoint-dir '{directory}': it is a file; give a folder.");
        }

        if (!fresh || !Directory.Exists(directory))
        {
            return;
        }

        var existing = Directory.GetDirectories(directory, "epoch-*");
        if (existing.Length == 0)
        {
            return;
        }

        if (!overwrite)
        {
            throw new ArgumentException(
                $"--checkpoint-dir '{directory}' already contains checkpoints of another run ({Path.GetFileName(existing.Order().Last())}). " +
                "Continue that run with --resume, choose another --checkpoint-dir, or pass --overwrite to delete them.");
        }

        foreach (string folder in existing)
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static void CheckResumeOption<T>(ParseResult parseResult, Option<T> option, T given, T saved)
    {
        if (IsGiven(parseResult, option) && !EqualityComparer<T>.Default.Equals(given, saved))
        {
            throw new ArgumentException(
                $"Invalid {option.Name} {given} with --resume: the checkpoint was trained with {option.Name} {saved}. Drop {option.Name} to continue it, or start a new run.");
        }
    }
}
