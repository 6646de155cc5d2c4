using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Orleans.Optim.Layout;
using Orleans.Optim.Python;

namespace Orleans.Optim.Checkpoints;

/// <summary>One shard's file in a checkpoint.</summary>
public sealed record ManifestShard
{
    /// <summary>Shard index.</summary>
    [JsonPropertyName("index")] public required int Index { get; init; }

    /// <summary>Param ID of the parameter the slice belongs to.</summary>
    [JsonPropertyName("param_id")] public required long ParamId { get; init; }

    /// <summary>First element of the slice.</summary>
    [JsonPropertyName("offset")] public required long Offset { get; init; }

    /// <summary>Number of elements.</summary>
    [JsonPropertyName("length")] public required int Length { get; init; }

    /// <summary>Path of the shard file in the store.</summary>
    [JsonPropertyName("file")] public required string File { get; init; }

    /// <summary>SHA-256 of the file, lowercase hex.</summary>
    [JsonPropertyName("sha256")] public required string Sha256 { get; init; }

    /// <summary>Size of the file in bytes.</summary>
    [JsonPropertyName("bytes")] public required long Bytes { get; init; }

    /// <summary>Returns the shard as the layout describes it.</summary>
    public ShardInfo ToShardInfo() => new(Index, ParamId, Offset, Length);
}

/// <summary>A parameter as a checkpoint records it.</summary>
public sealed record ManifestParameter
{
    /// <summary>Param ID.</summary>
    [JsonPropertyName("id")] public required long Id { get; init; }

    /// <summary>Name, or <see langword="null"/>.</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }

    /// <summary>Shape.</summary>
    [JsonPropertyName("shape")] public required long[] Shape { get; init; }

    /// <summary>Index of the parameter's group.</summary>
    [JsonPropertyName("group")] public required int Group { get; init; }
}

/// <summary>
/// The manifest of a sharded checkpoint, written last: a checkpoint without one does not exist for readers. It
/// records everything but the tensors: the step, the algorithm and its hyperparameters, the layout, every shard
/// file with its checksum, and the scheduler.
/// </summary>
/// <remarks>Python values (defaults, groups, scheduler) are stored exactly, as base64 of <see cref="PythonBinary"/>.</remarks>
public sealed record CheckpointManifest
{
    /// <summary>File name of the manifest inside a checkpoint folder.</summary>
    public const string FileName = "manifest.json";

    private const string FormatName = "orleans-optim-sharded-checkpoint";

    /// <summary>Format marker.</summary>
    [JsonPropertyName("format")] public string Format { get; init; } = FormatName;

    /// <summary>Format version.</summary>
    [JsonPropertyName("version")] public int Version { get; init; } = 1;

    /// <summary>Name of the optimizer that wrote the checkpoint.</summary>
    [JsonPropertyName("optimizer")] public required string Optimizer { get; init; }

    /// <summary>Checkpoint id, unique per optimizer.</summary>
    [JsonPropertyName("checkpoint")] public required string Checkpoint { get; init; }

    /// <summary>The step every shard was at.</summary>
    [JsonPropertyName("step")] public required long Step { get; init; }

    /// <summary>When the manifest was written, UTC, ISO 8601.</summary>
    [JsonPropertyName("created_utc")] public required string CreatedUtc { get; init; }

    /// <summary>Torch class name of the algorithm.</summary>
    [JsonPropertyName("algorithm")] public required string Algorithm { get; init; }

    /// <summary>Number of data-parallel workers.</summary>
    [JsonPropertyName("world_size")] public required int WorldSize { get; init; }

    /// <summary>Gradient reduction: 0 for mean, 1 for sum.</summary>
    [JsonPropertyName("reduction")] public required int Reduction { get; init; }

    /// <summary>Whether steps with non-finite gradients are skipped.</summary>
    [JsonPropertyName("skip_non_finite_steps")] public bool SkipNonFiniteSteps { get; init; }

    /// <summary>Maximum elements per shard of the layout that wrote it.</summary>
    [JsonPropertyName("max_shard_elements")] public required int MaxShardElements { get; init; }

    /// <summary>Torch's <c>optimizer.defaults</c>, base64 of <see cref="PythonBinary.EncodeOptions"/>.</summary>
    [JsonPropertyName("defaults")] public required string Defaults { get; init; }

    /// <summary>Each group's hyperparameters at the step, base64 of <see cref="PythonBinary.EncodeOptions"/>.</summary>
    [JsonPropertyName("groups")] public required string[] Groups { get; init; }

    /// <summary>Parameters by param ID.</summary>
    [JsonPropertyName("parameters")] public required ManifestParameter[] Parameters { get; init; }

    /// <summary>Shard files by shard index.</summary>
    [JsonPropertyName("shards")] public required ManifestShard[] Shards { get; init; }

    /// <summary>The scheduler's spec, base64 of <see cref="PythonBinary.Encode"/>, or <see langword="null"/>.</summary>
    [JsonPropertyName("scheduler")] public string? Scheduler { get; init; }

    /// <summary>The scheduler's torch state dict at the step, base64 of <see cref="PythonBinary.Encode"/>, or <see langword="null"/>.</summary>
    [JsonPropertyName("scheduler_state")] public string? SchedulerState { get; init; }

    /// <summary>Returns the folder of a checkpoint in the store.</summary>
    public static string FolderOf(string optimizer, string checkpoint) => $"{optimizer}/{checkpoint}";

    /// <summary>Returns the id of the checkpoint taken at <paramref name="step"/>; ids sort by step.</summary>
    public static string IdForStep(long step) => "step-" + step.ToString("D12", CultureInfo.InvariantCulture);

    /// <summary>Returns the path of a shard's file in a checkpoint folder.</summary>
    public static string ShardFile(string optimizer, string checkpoint, int index) =>
        $"{FolderOf(optimizer, checkpoint)}/shard-{index.ToString("D6", CultureInfo.InvariantCulture)}.bin";

    /// <summary>Returns the layout the checkpoint was written with.</summary>
    public OptimizerLayout ToLayout() => new()
    {
        Algorithm = Algorithm,
        Parameters = Parameters.Select(p => new ParameterInfo(p.Id, p.Name, p.Shape, p.Group)).ToList(),
        Shards = Shards.Select(s => s.ToShardInfo()).ToList(),
        GroupCount = Groups.Length,
        WorldSize = WorldSize,
        Reduction = (GradientReduction)Reduction,
        MaxShardElements = MaxShardElements,
    };

    /// <summary>Returns the decoded defaults.</summary>
    public OrderedDictionary<string, object?> DecodeDefaults() => PythonBinary.DecodeOptions(Convert.FromBase64String(Defaults));

    /// <summary>Returns the decoded groups.</summary>
    public List<OrderedDictionary<string, object?>> DecodeGroups() => Groups.Select(g => PythonBinary.DecodeOptions(Convert.FromBase64String(g))).ToList();

    /// <summary>Serializes the manifest as indented JSON.</summary>
    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, new JsonSerializerOptions { WriteIndented = true });

    /// <summary>Reads a manifest.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a manifest of this format.</exception>
    public static CheckpointManifest FromJson(byte[] json, string source)
    {
        CheckpointManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<CheckpointManifest>(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source} is not a checkpoint manifest: {e.Message}", e);
        }

        if (manifest is null || manifest.Format != FormatName || manifest.Version != 1)
        {
            throw new InvalidDataException($"{source} is not a version 1 checkpoint manifest: expected \"format\": \"{FormatName}\".");
        }

        return manifest;
    }

    /// <summary>Reads the manifest of a checkpoint from a store.</summary>
    /// <exception cref="FileNotFoundException">The checkpoint has no manifest, so it does not exist.</exception>
    public static async Task<CheckpointManifest> ReadAsync(ICheckpointStore store, string optimizer, string checkpoint, CancellationToken cancellationToken = default)
    {
        string path = $"{FolderOf(optimizer, checkpoint)}/{FileName}";
        if (!await store.ExistsAsync(path, cancellationToken))
        {
            throw new FileNotFoundException($"Checkpoint '{checkpoint}' of optimizer '{optimizer}' not found in {store.Describe()}: it has no {FileName}.", path);
        }

        await using var stream = await store.OpenReadAsync(path, cancellationToken);
        using var memory = new MemoryStream();
        await stream.CopyToAsync(memory, cancellationToken);
        return FromJson(memory.ToArray(), path);
    }

    /// <summary>Lists the complete checkpoints of an optimizer (those with a manifest), oldest first.</summary>
    public static async Task<IReadOnlyList<string>> ListAsync(ICheckpointStore store, string optimizer, CancellationToken cancellationToken = default)
    {
        var paths = await store.ListAsync(optimizer + "/", cancellationToken);
        return paths
            .Where(p => p.EndsWith("/" + FileName, StringComparison.Ordinal) && p.Count(c => c == '/') == 2)
            .Select(p => p.Split('/')[1])
            .Order(StringComparer.Ordinal)
            .ToList();
    }
}
