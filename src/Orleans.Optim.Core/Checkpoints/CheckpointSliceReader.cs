using Orleans.Optim.Algorithms;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;

namespace Orleans.Optim.Checkpoints;

/// <summary>A slice read back from a checkpoint: values, state and order key at the checkpoint's step.</summary>
/// <param name="Values">The slice's master values.</param>
/// <param name="State">The slice's state, or <see langword="null"/> when the parameter had none.</param>
/// <param name="OrderKey">Where the parameter's state sits in torch's state order.</param>
public sealed record CheckpointSlice(float[] Values, SliceState? State, StateOrderKey OrderKey);

/// <summary>
/// Reads any slice of any parameter out of a sharded checkpoint, whatever shard size wrote it, so that a checkpoint
/// restores onto another shard size or silo count.
/// </summary>
public static class CheckpointSliceReader
{
    /// <summary>Reads the elements <paramref name="target"/> covers, checking every source file's checksum first.</summary>
    /// <exception cref="InvalidDataException">A source file is missing, damaged or does not match the manifest.</exception>
    public static async Task<CheckpointSlice> ReadAsync(ICheckpointStore store, CheckpointManifest manifest, ShardInfo target, CancellationToken cancellationToken = default)
    {
        var sources = manifest.Shards
            .Where(s => s.ParamId == target.ParamId && s.Offset < target.Offset + target.Length && target.Offset < s.Offset + s.Length)
            .OrderBy(s => s.Offset)
            .ToList();

        // An empty parameter has one empty shard, which overlaps nothing; read its header for the state.
        if (sources.Count == 0)
        {
            sources = manifest.Shards.Where(s => s.ParamId == target.ParamId).Take(1).ToList();
        }

        if (sources.Count == 0)
        {
            throw new InvalidDataException($"Checkpoint '{manifest.Checkpoint}' has no shard of param {target.ParamId}.");
        }

        var values = new float[target.Length];
        List<StateEntry>? entries = null;
        StateOrderKey orderKey = default;
        bool hasState = false;
        foreach (var source in sources)
        {
            await using var stream = await OpenVerifiedAsync(store, manifest, source, cancellationToken);
            var header = ShardCheckpointFile.ReadHeader(stream);
            if (header.Shard != source.ToShardInfo() || header.Step != manifest.Step)
            {
                throw new InvalidDataException(
                    $"{source.File} holds shard {header.Shard} at step {header.Step}, but the manifest lists {source.ToShardInfo()} at step {manifest.Step}.");
            }

            long from = Math.Max(target.Offset, source.Offset);
            long to = Math.Min(target.Offset + target.Length, source.Offset + source.Length);
            int count = (int)Math.Max(0, to - from);
            int into = (int)(from - target.Offset);
            long within = from - source.Offset;
            if (count > 0)
            {
                await ShardCheckpointFile.ReadRangeAsync(stream, header.ValuesOffset, within, values.AsMemory(into, count));
            }

            if (entries is null)
            {
                hasState = header.HasState;
                orderKey = header.OrderKey;
                entries = header.Entries.Select(e => e.Kind switch
                {
                    StateValueKind.ParamTensor => StateEntry.Slice(e.Name, new float[target.Length]),
                    StateValueKind.ScalarTensor => StateEntry.ScalarTensor(e.Name, e.Number, e.ScalarDType),
                    StateValueKind.Int => StateEntry.Int(e.Name, (long)e.Number),
                    StateValueKind.Float => StateEntry.Float(e.Name, e.Number),
                    _ => StateEntry.None(e.Name),
                }).ToList();
            }
            else if (header.HasState != hasState || header.Entries.Count != entries.Count)
            {
                throw new InvalidDataException($"Shards of param {target.ParamId} in checkpoint '{manifest.Checkpoint}' disagree on their state entries.");
            }

            foreach (var entry in header.Entries.Where(e => e.Kind == StateValueKind.ParamTensor))
            {
                var slice = entries.FirstOrDefault(e => e.Name == entry.Name && e.Kind == StateValueKind.ParamTensor)
                    ?? throw new InvalidDataException($"Shards of param {target.ParamId} disagree on entry '{entry.Name}'.");
                if (count > 0)
                {
                    await ShardCheckpointFile.ReadRangeAsync(stream, entry.DataOffset, within, slice.Values.AsMemory(into, count));
                }
            }
        }

        return new CheckpointSlice(values, hasState ? new SliceState(entries!) : null, orderKey);
    }

    /// <summary>Opens a shard file after checking its size and SHA-256 against the manifest.</summary>
    /// <exception cref="InvalidDataException">The file does not match.</exception>
    public static async Task<Stream> OpenVerifiedAsync(ICheckpointStore store, CheckpointManifest manifest, ManifestShard source, CancellationToken cancellationToken = default)
    {
        var stream = await store.OpenReadAsync(source.File, cancellationToken);
        var seekable = stream.CanSeek ? stream : await CopyToMemoryAsync(stream, cancellationToken);
        string hash = await ShardCheckpointFile.HashAsync(seekable);
        long length = seekable.Length;
        if (length != source.Bytes || hash != source.Sha256)
        {
            await seekable.DisposeAsync();
            throw new InvalidDataException(
                $"Checkpoint file {source.File} of '{manifest.Checkpoint}' is damaged: {length} bytes with SHA-256 {hash}, " +
                $"the manifest lists {source.Bytes} bytes with {source.Sha256}. Restore another checkpoint.");
        }

        seekable.Seek(0, SeekOrigin.Begin);
        return seekable;
    }

    private static async Task<Stream> CopyToMemoryAsync(Stream stream, CancellationToken cancellationToken)
    {
        var memory = new MemoryStream();
        await using (stream)
        {
            await stream.CopyToAsync(memory, cancellationToken);
        }

        memory.Seek(0, SeekOrigin.Begin);
        return memory;
    }
}
