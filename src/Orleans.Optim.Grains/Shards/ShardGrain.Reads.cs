using System.Runtime.InteropServices;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Engine;
using Orleans.Optim.Grains;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Shards;

/// <summary>The shard's chunked reads of its state, for state dicts and streamed exports.</summary>
internal sealed partial class ShardGrain
{
    /// <inheritdoc/>
    public Task<ShardStateChunk> ReadState(long expectedStep, long offset, int count)
    {
        var config = persisted.State.Config ?? throw NotConfigured();
        var slice = _slice ?? throw new OptimizerFaultException(
            OptimizerFault.NotReady, $"Shard {config.Shard.Index} of optimizer '{config.Optimizer}' has no values yet.");
        if (expectedStep != ShardStateChunk.AnyStep && expectedStep != _step)
        {
            throw new OptimizerFaultException(
                OptimizerFault.Inconsistent,
                $"Shard {config.Shard.Index} of optimizer '{config.Optimizer}' is at step {_step}, not {expectedStep}: a step was applied while its state was read. Read the state between steps.");
        }

        // The update kernel runs on a grain turn, so between two turns every tensor is at _step.
        // NOTE: a kernel moved off the grain turn must keep these reads out while it runs, or they can tear a step.
        var tensors = slice.State?.Entries.Where(e => e.Kind == StateValueKind.ParamTensor).Select(e => e.Values!).ToList() ?? [];
        long totalBytes = (long)tensors.Count * config.Shard.Length * sizeof(float);
        if (count < 0 || count > ShardStateChunk.MaxBytes || offset < 0 || offset > totalBytes)
        {
            throw new OptimizerFaultException(
                OptimizerFault.InvalidArgument,
                $"Invalid state range of shard {config.Shard.Index}: offset {offset}, count {count}; expected 0 <= offset <= {totalBytes} and 0 <= count <= {ShardStateChunk.MaxBytes}.");
        }

        var data = new byte[(int)Math.Min(count, totalBytes - offset)];
        long tensorBytes = (long)config.Shard.Length * sizeof(float);
        int written = 0;
        while (written < data.Length)
        {
            long position = offset + written;
            int tensor = (int)(position / tensorBytes);
            int start = (int)(position % tensorBytes);
            var source = MemoryMarshal.AsBytes(tensors[tensor].AsSpan())[start..];
            int length = Math.Min(source.Length, data.Length - written);
            source[..length].CopyTo(data.AsSpan(written));
            written += length;
        }

        return Task.FromResult(new ShardStateChunk(
            _step,
            SliceStateBinary.EncodeHeader(slice.State),
            slice.OrderKey.Step,
            slice.OrderKey.Position,
            totalBytes,
            data,
            RuntimeIdentity));
    }

    /// <inheritdoc/>
    public async Task<ShardStateChunk[]> ReadStates(long expectedStep, ShardStateRequest[] requests)
    {
        var config = persisted.State.Config ?? throw NotConfigured();
        long totalCount = requests.Sum(r => (long)r.Count);
        if (requests.Length > ShardStateRequest.MaxBatch || totalCount > ShardStateChunk.MaxBytes)
        {
            throw new OptimizerFaultException(
                OptimizerFault.InvalidArgument,
                $"Invalid batch of state reads for shard {config.Shard.Index}: {requests.Length} requests of {totalCount} bytes in all; expected at most {ShardStateRequest.MaxBatch} requests and {ShardStateChunk.MaxBytes} bytes.");
        }

        // The replies are immutable, so a forwarded read within this silo passes its bytes without a copy.
        return await Task.WhenAll(requests.Select(request => request.Shard == config.Shard.Index
            ? ReadState(expectedStep, request.Offset, request.Count)
            : GrainFactory.GetGrain<IShardGrain>(ShardKeys.For(config.Optimizer, request.Shard)).ReadState(expectedStep, request.Offset, request.Count)));
    }
}
