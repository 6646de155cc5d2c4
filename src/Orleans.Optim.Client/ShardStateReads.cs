using Orleans.Optim.Grains;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Client;

/// <summary>
/// Reads ranges of many shards' state, batching the shards of one silo into one <c>ReadStates</c> call sent to one
/// of them, so that a state dict over thousands of small shards costs a few round trips per silo, not one per shard.
/// </summary>
/// <remarks>
/// The silo of each shard is learned from the replies. Until a shard's silo is known (the first read through a
/// handle), the shard is read on its own. A shard that moved since is still read correctly, through a forwarded
/// call between silos. Thread-safe for concurrent reads.
/// </remarks>
internal sealed class ShardStateReads(IGrainFactory grains, string optimizer)
{
    private readonly object _lock = new();
    private string?[] _silos = [];

    /// <summary>Reads every range at <paramref name="expectedStep"/> and returns the replies in request order.</summary>
    /// <exception cref="OptimizerFaultException">A shard failed its read, for example because it is at another step.</exception>
    public async Task<ShardStateChunk[]> ReadAsync(long expectedStep, IReadOnlyList<ChunkRequest> requests)
    {
        var replies = new ShardStateChunk[requests.Count];
        var calls = new List<Task>();
        foreach (var batch in Batches(requests))
        {
            calls.Add(batch.Count == 1 ? ReadOneAsync(expectedStep, requests, batch[0], replies) : ReadBatchAsync(expectedStep, requests, batch, replies));
        }

        await Task.WhenAll(calls);
        Learn(requests, replies);
        return replies;
    }

    private async Task ReadOneAsync(long expectedStep, IReadOnlyList<ChunkRequest> requests, int position, ShardStateChunk[] replies)
    {
        var request = requests[position];
        replies[position] = await Shard(request.ShardIndex).ReadState(expectedStep, request.Offset, checked((int)request.Count));
    }

    private async Task ReadBatchAsync(long expectedStep, IReadOnlyList<ChunkRequest> requests, List<int> batch, ShardStateChunk[] replies)
    {
        var wire = batch.Select(p => new ShardStateRequest(requests[p].ShardIndex, requests[p].Offset, checked((int)requests[p].Count))).ToArray();
        var batchReplies = await Shard(wire[0].Shard).ReadStates(expectedStep, wire);
        for (int i = 0; i < batch.Count; i++)
        {
            replies[batch[i]] = batchReplies[i];
        }
    }

    /// <summary>Groups the request positions by known silo, in batches within the wire limits; a shard of unknown silo gets a batch of its own.</summary>
    private List<List<int>> Batches(IReadOnlyList<ChunkRequest> requests)
    {
        var batches = new List<List<int>>();
        var open = new Dictionary<string, (List<int> Positions, long Bytes)>();
        lock (_lock)
        {
            for (int position = 0; position < requests.Count; position++)
            {
                var request = requests[position];
                string? silo = request.ShardIndex < _silos.Length ? _silos[request.ShardIndex] : null;
                if (silo is null)
                {
                    batches.Add([position]);
                    continue;
                }

                if (!open.TryGetValue(silo, out var current) || current.Positions.Count == ShardStateRequest.MaxBatch
                    || current.Bytes + request.Count > ShardStateChunk.MaxBytes)
                {
                    current = ([], 0);
                    batches.Add(current.Positions);
                }

                current.Positions.Add(position);
                open[silo] = (current.Positions, current.Bytes + request.Count);
            }
        }

        return batches;
    }

    private void Learn(IReadOnlyList<ChunkRequest> requests, ShardStateChunk[] replies)
    {
        lock (_lock)
        {
            int needed = requests.Count == 0 ? 0 : requests.Max(r => r.ShardIndex) + 1;
            if (needed > _silos.Length)
            {
                Array.Resize(ref _silos, needed);
            }

            for (int i = 0; i < requests.Count; i++)
            {
                _silos[requests[i].ShardIndex] = replies[i].Silo;
            }
        }
    }

    private IShardGrain Shard(int index) => grains.GetGrain<IShardGrain>(ShardKeys.For(optimizer, index));
}
