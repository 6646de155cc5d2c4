using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Cli.Training;

/// <summary>
/// A training checkpoint folder: <c>optimizer.pt</c> (torch's optimizer state dict), <c>model.pt</c> (the model's
/// state dict, name to tensor) and <c>checkpoint.json</c> (epoch, steps and the run's settings).
/// </summary>
/// <remarks>
/// The files are written into a temporary folder that is renamed into place last, so a folder named
/// <c>epoch-NNNN</c> is always complete.
/// </remarks>
public sealed record TrainingCheckpoint
{
    /// <summary>File name of the optimizer state dict.</summary>
    public const string OptimizerFile = "optimizer.pt";

    /// <summary>File name of the model state dict.</summary>
    public const string ModelFile = "model.pt";

    /// <summary>File name of the learning-rate scheduler's state dict, present when the run has a scheduler.</summary>
    public const string SchedulerFile = "scheduler.pt";

    /// <summary>File name of the metadata.</summary>
    public const string MetadataFile = "checkpoint.json";

    private const string FormatName = "orleans-optim-train-checkpoint";

    /// <summary>Format marker.</summary>
    [JsonPropertyName("format")] public string Format { get; init; } = FormatName;

    /// <summary>Epochs completed.</summary>
    [JsonPropertyName("epoch")] public required int Epoch { get; init; }

    /// <summary>Synchronous steps completed.</summary>
    [JsonPropertyName("steps")] public required long Steps { get; init; }

    /// <summary>The run's settings.</summary>
    [JsonPropertyName("settings")] public required TrainSettings Settings { get; init; }

    /// <summary>Held-out accuracy at this epoch.</summary>
    [JsonPropertyName("held_out_accuracy")] public double HeldOutAccuracy { get; init; }

    /// <summary>Returns the folder name of the checkpoint after <paramref name="epoch"/> epochs.</summary>
    public static string FolderName(int epoch) => "epoch-" + epoch.ToString("D4", CultureInfo.InvariantCulture);

    /// <summary>Writes a checkpoint folder under <paramref name="directory"/> and returns its path.</summary>
    public string Write(
        string directory,
        OptimizerStateDict optimizerState,
        IReadOnlyList<ParameterDescriptor> parameters,
        IReadOnlyList<float[]> values,
        OrderedDictionary<object, object?>? schedulerState = null)
    {
        Directory.CreateDirectory(directory);
        string target = Path.Combine(directory, FolderName(Epoch));
        string temporary = Path.Combine(directory, "." + FolderName(Epoch) + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(temporary);

        StateDictFiles.WriteOptimizer(Path.Combine(temporary, OptimizerFile), optimizerState);
        StateDictFiles.WriteModel(
            Path.Combine(temporary, ModelFile),
            parameters.Select((p, i) => (p.Name, p.Shape.ToArray(), values[i])).ToList());
        if (schedulerState is not null)
        {
            PtWriter.WriteFile(Path.Combine(temporary, SchedulerFile), schedulerState);
        }

        File.WriteAllText(Path.Combine(temporary, MetadataFile), JsonSerializer.Serialize(this, new JsonSerializerOptions { WriteIndented = true }));

        if (Directory.Exists(target))
        {
            Directory.Delete(target, recursive: true);
        }

        Directory.Move(temporary, target);
        return target;
    }

    /// <summary>
    /// Finds the checkpoint to resume from: <paramref name="path"/> itself when it contains <c>checkpoint.json</c>, or
    /// the latest <c>epoch-NNNN</c> folder inside it.
    /// </summary>
    /// <exception cref="FileNotFoundException">No checkpoint is there.</exception>
    public static string Locate(string path)
    {
        if (File.Exists(Path.Combine(path, MetadataFile)))
        {
            return path;
        }

        if (Directory.Exists(path))
        {
            string? latest = Directory.GetDirectories(path, "epoch-*")
                .Where(d => File.Exists(Path.Combine(d, MetadataFile)))
                .Order(StringComparer.Ordinal)
                .LastOrDefault();
            if (latest is not null)
            {
                return latest;
            }
        }

        throw new FileNotFoundException(
            $"No checkpoint at '{path}': expected a folder with {MetadataFile}, {OptimizerFile} and {ModelFile}, or a run folder with epoch-NNNN checkpoints.");
    }

    /// <summary>Reads the metadata of the checkpoint folder <paramref name="folder"/>.</summary>
    /// <exception cref="InvalidDataException">The metadata is not a training checkpoint.</exception>
    public static TrainingCheckpoint Read(string folder)
    {
        string path = Path.Combine(folder, MetadataFile);
        TrainingCheckpoint? checkpoint;
        try
        {
            checkpoint = JsonSerializer.Deserialize<TrainingCheckpoint>(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a training checkpoint: {e.Message}", e);
        }

        if (checkpoint is null || checkpoint.Format != FormatName)
        {
            throw new InvalidDataException($"{path} is not a training checkpoint: expected \"format\": \"{FormatName}\".");
        }

        return checkpoint;
    }

    /// <summary>Reads the model parameters of a checkpoint in the model's parameter order, checking names and shapes.</summary>
    /// <exception cref="InvalidDataException">A parameter is missing or has another shape.</exception>
    public static float[][] ReadModel(string folder, IReadOnlyList<ParameterDescriptor> parameters)
    {
        string path = Path.Combine(folder, ModelFile);
        var tensors = StateDictFiles.ReadModel(path);
        var values = new float[parameters.Count][];
        for (int i = 0; i < parameters.Count; i++)
        {
            var parameter = parameters[i];
            if (!tensors.TryGetValue(parameter.Name, out var tensor))
            {
                throw new InvalidDataException($"{path} has no tensor '{parameter.Name}'; it has {string.Join(", ", tensors.Keys)}.");
            }

            if (!tensor.HasShape(parameter.Shape.ToArray()))
            {
                throw new InvalidDataException(
                    $"{path}: '{parameter.Name}' has shape {Tensor.FormatShape(tensor.Shape)}, but the model needs {Tensor.FormatShape(parameter.Shape.ToArray())}. Was it trained with another --hidden?");
            }

            values[i] = tensor.ToFloat32().AsFloats().ToArray();
        }

        return values;
    }
}
