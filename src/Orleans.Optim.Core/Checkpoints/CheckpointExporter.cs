using Orleans.Optim.Algorithms;
using Orleans.Optim.Engine;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Python;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Checkpoints;

/// <summary>
/// Builds the consolidated torch <c>.pt</c> files (optimizer state dict and model state dict) from a sharded
/// checkpoint without a running cluster, streaming every tensor shard by shard into the zip so that memory stays
/// bounded by one copy buffer, not by the model's size.
/// </summary>
public sealed class CheckpointExporter
{
    private const int CopyBufferBytes = 1 << 20;

    private readonly ICheckpointStore _store;
    private readonly CheckpointManifest _manifest;
    private readonly Dictionary<string, ShardFileHeader> _headers;

    private CheckpointExporter(ICheckpointStore store, CheckpointManifest manifest, Dictionary<string, ShardFileHeader> headers)
    {
        _store = store;
        _manifest = manifest;
        _headers = headers;
    }

    /// <summary>The checkpoint's manifest.</summary>
    public CheckpointManifest Manifest => _manifest;

    /// <summary>
    /// Opens a checkpoint: reads its manifest and checks every shard file's size and SHA-256, reading each file once.
    /// </summary>
    /// <exception cref="FileNotFoundException">The checkpoint has no manifest.</exception>
    /// <exception cref="InvalidDataException">A shard file is missing or damaged.</exception>
    public static async Task<CheckpointExporter> OpenAsync(ICheckpointStore store, string optimizer, string checkpoint, CancellationToken cancellationToken = default)
    {
        var manifest = await CheckpointManifest.ReadAsync(store, optimizer, checkpoint, cancellationToken);
        var headers = new Dictionary<string, ShardFileHeader>();
        foreach (var shard in manifest.Shards)
        {
            await using var stream = await CheckpointSliceReader.OpenVerifiedAsync(store, manifest, shard, cancellationToken);
            headers[shard.File] = ShardCheckpointFile.ReadHeader(stream);
        }

        return new CheckpointExporter(store, manifest, headers);
    }

    /// <summary>
    /// Writes the optimizer state dict (<c>optimizer.state_dict()</c> at the checkpoint's step) as a <c>.pt</c> that
    /// torch's <c>load_state_dict</c> accepts.
    /// </summary>
    public void WriteOptimizer(string path)
    {
        var stateWithKeys = new List<(StateOrderKey Key, long ParamId, OrderedDictionary<object, object?> Entries)>();
        foreach (var parameter in _manifest.Parameters)
        {
            var shards = ShardsOf(parameter.Id);
            var header = _headers[shards[0].File];
            if (!header.HasState)
            {
                continue;
            }

            var entries = new OrderedDictionary<object, object?>();
            foreach (var entry in header.Entries)
            {
                entries[entry.Name] = entry.Kind switch
                {
                    StateValueKind.ParamTensor => Streamed(parameter.Shape, shards, file => _headers[file].Find(entry.Name)!.DataOffset),
                    _ => StateDictAssembler.ScalarValue(ScalarEntry(entry)),
                };
            }

            stateWithKeys.Add((header.OrderKey, parameter.Id, entries));
        }

        var state = new OrderedDictionary<object, object?>();
        foreach (var (_, id, entries) in stateWithKeys.OrderBy(s => s.Key))
        {
            state[id] = entries;
        }

        var groups = new List<object?>();
        bool allNamed = _manifest.Parameters.All(p => p.Name is not null);
        var decodedGroups = _manifest.DecodeGroups();
        for (int g = 0; g < decodedGroups.Count; g++)
        {
            var group = new OrderedDictionary<object, object?>();
            foreach (var (key, value) in decodedGroups[g])
            {
                group[key] = value;
            }

            var members = _manifest.Parameters.Where(p => p.Group == g).OrderBy(p => p.Id).ToList();
            if (allNamed)
            {
                group[StateDictAssembler.ParamNamesKey] = members.Select(p => (object?)p.Name).ToList();
            }

            group["params"] = members.Select(p => (object?)p.Id).ToList();
            groups.Add(group);
        }

        PtWriter.WriteFile(path, new OrderedDictionary<object, object?> { ["state"] = state, ["param_groups"] = groups });
    }

    /// <summary>Writes the parameters as a model state dict <c>.pt</c> (name to tensor, in param-ID order).</summary>
    /// <exception cref="InvalidOperationException">A parameter has no name.</exception>
    public void WriteModel(string path)
    {
        var root = new PythonOrderedDict();
        foreach (var parameter in _manifest.Parameters.OrderBy(p => p.Id))
        {
            if (parameter.Name is null)
            {
                throw new InvalidOperationException($"Param {parameter.Id} has no name; a model state dict needs a name for every parameter.");
            }

            root[parameter.Name] = Streamed(parameter.Shape, ShardsOf(parameter.Id), file => _headers[file].ValuesOffset);
        }

        PtWriter.WriteFile(path, root);
    }

    private List<ManifestShard> ShardsOf(long paramId) => _manifest.Shards.Where(s => s.ParamId == paramId).OrderBy(s => s.Offset).ToList();

    private StreamedTensor Streamed(long[] shape, List<ManifestShard> shards, Func<string, long> dataOffset) =>
        new(DType.Float32, shape, output =>
        {
            var buffer = new byte[CopyBufferBytes];
            foreach (var shard in shards)
            {
                // The writer's callback is synchronous, so the store is read synchronously here.
                using var input = _store.OpenReadAsync(shard.File).GetAwaiter().GetResult();
                input.Seek(dataOffset(shard.File), SeekOrigin.Begin);
                long remaining = (long)shard.Length * sizeof(float);
                while (remaining > 0)
                {
                    int read = input.Read(buffer, 0, (int)Math.Min(buffer.Length, remaining));
                    if (read == 0)
                    {
                        throw new InvalidDataException($"Checkpoint file {shard.File} ended early while exporting.");
                    }

                    output.Write(buffer, 0, read);
                    remaining -= read;
                }
            }
        });

    private static StateEntry ScalarEntry(ShardFileEntry entry) => entry.Kind switch
    {
        StateValueKind.ScalarTensor => StateEntry.ScalarTensor(entry.Name, entry.Number, entry.ScalarDType),
        StateValueKind.Int => StateEntry.Int(entry.Name, (long)entry.Number),
        StateValueKind.Float => StateEntry.Float(entry.Name, entry.Number),
        _ => StateEntry.None(entry.Name),
    };
}
