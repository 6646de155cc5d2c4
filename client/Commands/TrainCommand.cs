using System.CommandLine;
using System.Text.Json;
using Orleans.Optim.Cli.Training;

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
        var optimizer = new Option<string>("--optimizer") { Description = "Torch optimizer class: SGD, Adam, AdamW, Adagrad, RMSprop, Adadelta or Adamax.", DefaultValueFactory = _ => defaults.Optimizer };
        var lr = new Option<double>("--lr") { Description = "Learning rate.", DefaultValueFactory = _ => defaults.Lr };
        var weightDecay = new Option<double?>("--weight-decay") { Description = "Weight decay (default: the optimizer's own)." };
        var momentum = new Option<double?>("--momentum") { Description = "Momentum, for SGD (default: the optimizer's own)." };
        var hidden = new Option<int>("--hidden") { Description = "Hidden layer width of the 64-H-10 MLP.", DefaultValueFactory = _ => defaults.Hidden };
        var seed = new Option<long>("--seed") { Description = "Seed of the initial parameters and the per-epoch shuffles.", DefaultValueFactory = _ => defaults.Seed };
        var shardSize = new Option<int>("--shard-size") { Description = "Maximum elements per shard; larger parameters are split.", DefaultValueFactory = _ => defaults.ShardSize };
        var checkpointDir = new Option<string>("--checkpoint-dir") { Description = "Folder for epoch-NNNN checkpoints (optimizer.pt, model.pt, checkpoint.json).", DefaultValueFactory = _ => Path.Combine("runs", "digits") };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Write a checkpoint every N epochs (0: only at the end).", DefaultValueFactory = _ => 5 };
        var resume = new Option<string?>("--resume") { Description = "Continue from a checkpoint folder, or from the latest checkpoint in a run folder." };
        var summary = new Option<string?>("--summary") { Description = "Write the final figures as JSON to this file." };
        var name = new Option<string?>("--name") { Description = "Optimizer name in the cluster (default: digits-<time>)." };
        var cluster = new ClusterOptions();

        var command = new Command("train", "Train a 64-32-10 MLP on the digits data set with data-parallel workers and a cluster-held optimizer.")
        {
            workers, epochs, batchSize, optimizer, lr, weightDecay, momentum, hidden, seed, shardSize, checkpointDir, checkpointEvery, resume, summary, name,
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
                Lr = parseResult.GetValue(lr),
                WeightDecay = parseResult.GetValue(weightDecay),
                Momentum = parseResult.GetValue(momentum),
                Hidden = parseResult.GetValue(hidden),
                Seed = parseResult.GetValue(seed),
                ShardSize = parseResult.GetValue(shardSize),
            };

            string? resumeFrom = parseResult.GetValue(resume);
            if (resumeFrom is not null)
            {
                resumeFrom = TrainingCheckpoint.Locate(resumeFrom);
                var saved = TrainingCheckpoint.Read(resumeFrom).Settings;
                CheckResumeOption(parseResult, workers, settings.Workers, saved.Workers);
                CheckResumeOption(parseResult, batchSize, settings.BatchSize, saved.BatchSize);
                CheckResumeOption(parseResult, optimizer, settings.Optimizer, saved.Optimizer);
                CheckResumeOption(parseResult, hidden, settings.Hidden, saved.Hidden);
                CheckResumeOption(parseResult, seed, settings.Seed, saved.Seed);
                settings = saved with { Epochs = parseResult.GetResult(epochs) is { Implicit: false } ? settings.Epochs : saved.Epochs };
            }

            settings.Validate();
            int every = parseResult.GetValue(checkpointEvery);
            if (every < 0)
            {
                throw new ArgumentException($"Invalid --checkpoint-every {every}: expected 0 or more epochs.");
            }

            string optimizerName = parseResult.GetValue(name) ?? $"digits-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..6]}";
            await using var connection = await cluster.ConnectAsync(parseResult, Console.Out);
            var job = new TrainingJob(connection.Client, Console.Out, Console.Error, interactive: !Console.IsErrorRedirected);
            var result = await job.RunAsync(settings, optimizerName, parseResult.GetValue(checkpointDir)!, every, resumeFrom, cancellationToken);

            Console.WriteLine(
                $"done: {result.Epochs} epochs, {result.Steps} steps, held-out accuracy {result.HeldOutAccuracy * 100:0.00}% in {result.Seconds:0.0} s");
            Console.WriteLine($"optimizer state: {result.OptimizerCheckpoint}");
            Console.WriteLine($"model parameters: {result.ModelCheckpoint}");
            if (parseResult.GetValue(summary) is { } summaryPath)
            {
                File.WriteAllText(summaryPath, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
            }

            return 0;
        });
        return command;
    }

    private static void CheckResumeOption<T>(ParseResult parseResult, Option<T> option, T given, T saved)
    {
        if (parseResult.GetResult(option) is { Implicit: false } && !EqualityComparer<T>.Default.Equals(given, saved))
        {
            throw new ArgumentException(
                $"Invalid {option.Name} {given} with --resume: the checkpoint was trained with {option.Name} {saved}. Drop {option.Name} to continue it, or start a new run.");
        }
    }
}
