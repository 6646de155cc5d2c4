using Orleans.Optim.Algorithms;
using Orleans.Optim.Engine;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Layout;
using Orleans.Optim.Tensors;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Client;

/// <summary>
/// An optimizer state dict whose tensors are <see cref="StreamedTensor"/> placeholders: when <see cref="PtWriter"/>
/// reaches one, its bytes are fetched from the shards in chunks and copied straight into the <c>.pt</c> file.
/// </summary>
/// <remarks>
/// The tree has the same structure and order as <c>OptimizerStateDict.ToPython()</c> of the gathered state dict, so
/// the written file is the same, byte for byte. The tensors must be written in tree order, as
/// <see cref="PtWriter"/> does; a tensor reached out of order fails the write instead of writing wrong bytes.
/// </remarks>
internal sealed class StreamedStateExport : IDisposable
{
    private readonly ShardChunkStream _chunks;
    private int _nextTensor;

    /// <summary>Builds the tree from every shard's state header, all read at one step.</summary>
    /// <param name="layout">The optimizer's parameters and shard map.</param>
    /// <param name="groups">Each group's hyperparameters, without <c>params</c>.</param>
    /// <param name="headers">Each shard's <see cref="ShardStateChunk"/>, by shard index.</param>
    /// <param name="fetch">Reads a range of a shard's tensor bytes at the headers' step.</param>
    /// <exception cref="OptimizerFaultException">Shards of one parameter disagree on their state.</exception>
    public StreamedStateExport(
        OptimizerLayout layout,
        IReadOnlyList<IReadOnlyDictionary<string, object?>> groups,
        IReadOnlyList<ShardStateChunk> headers,
        Func<ChunkRequest, Task<ShardStateChunk>> fetch)
    {
        var shardsByParam = layout.Shards.GroupBy(s => s.ParamId).ToDictionary(g => g.Key, g => g.OrderBy(s => s.Offset).ToList());
        var parameters = new List<(StateOrderKey Key, ParameterInfo Parameter, SliceState State)>();
        foreach (var parameter in layout.Parameters)
        {
            var shards = shardsByParam[parameter.Id];
            var state = CheckedState(parameter, shards, headers);
            if (state is not null)
            {
                var first = headers[shards[0].Index];
                parameters.Add((new StateOrderKey(first.OrderStep, first.OrderPosition), parameter, state));
            }
        }

        var ranges = new List<ChunkRequest>();
        var stateDict = new OrderedDictionary<object, object?>();
        int tensorCount = 0;
        foreach (var (_, parameter, state) in parameters.OrderBy(p => p.Key))
        {
            var shards = shardsByParam[parameter.Id];
            var entries = new OrderedDictionary<object, object?>();
            int tensorEntry = 0;
            foreach (var entry in state.Entries)
            {
                if (entry.Kind != StateValueKind.ParamTensor)
                {
                    entries[entry.Name] = StateDictAssembler.ScalarValue(entry);
                    continue;
                }

                // Entry k of a shard's tensor bytes starts at k times the slice's byte length.
                foreach (var shard in shards)
                {
                    long sliceBytes = (long)shard.Length * sizeof(float);
                    ranges.Add(new ChunkRequest(shard.Index, tensorEntry * sliceBytes, sliceBytes));
                }

                int index = tensorCount++;
                entries[entry.Name] = new StreamedTensor(DType.Float32, parameter.Shape, output => WriteTensor(index, output, parameter.NumElements * sizeof(float)));
                tensorEntry++;
            }

            stateDict[parameter.Id] = entries;
        }

        var paramGroups = StateDictAssembler.BuildGroups(layout, groups)
            .Select(group => (object?)new OrderedDictionary<object, object?>(group.Select(p => KeyValuePair.Create((object)p.Key, p.Value))))
            .ToList();
        Tree = new OrderedDictionary<object, object?> { ["state"] = stateDict, ["param_groups"] = paramGroups };
        TensorBytes = ranges.Sum(r => r.Count);
        _chunks = new ShardChunkStream(ShardChunkStream.Plan(ranges), fetch);
    }

    /// <summary>The state dict as a Python value tree for <see cref="PtWriter"/>.</summary>
    public OrderedDictionary<object, object?> Tree { get; }

    /// <summary>Number of tensor bytes the shards send during the write.</summary>
    public long TensorBytes { get; }

    /// <inheritdoc/>
    public void Dispose() => _chunks.Dispose();

    /// <summary>Decodes a parameter's state from its shards' headers, checking that they agree as the gathered state dict requires.</summary>
    private static SliceState? CheckedState(ParameterInfo parameter, List<ShardInfo> shards, IReadOnlyList<ShardStateChunk> headers)
    {
        var first = headers[shards[0].Index];
        var state = SliceStateBinary.Decode(first.Header);
        foreach (var shard in shards)
        {
            var header = headers[shard.Index];
            var other = shard == shards[0] ? state : SliceStateBinary.Decode(header.Header);
            bool agrees = (other is null) == (state is null) && header.OrderStep == first.OrderStep && header.OrderPosition == first.OrderPosition
                && (state is null || (other!.Entries.Count == state.Entries.Count
                    && other.Entries.Zip(state.Entries).All(p => p.First.Name == p.Second.Name && p.First.Kind == p.Second.Kind && p.First.Number == p.Second.Number)));
            if (!agrees)
            {
                throw new OptimizerFaultException(
                    OptimizerFault.Inconsistent, $"Shards of param {parameter.Id} disagree on whether, when or with which entries its state was created.");
            }

            int tensors = state?.Entries.Count(e => e.Kind == StateValueKind.ParamTensor) ?? 0;
            if (header.TotalBytes != (long)tensors * shard.Length * sizeof(float))
            {
                throw new OptimizerFaultException(
                    OptimizerFault.Inconsistent,
                    $"Shard {shard.Index} of param {parameter.Id} holds {header.TotalBytes} bytes of state tensors; expected {tensors} tensors of {shard.Length} float32 elements.");
            }
        }

        return state;
    }

    private void WriteTensor(int index, Stream output, long byteCount)
    {
        if (index != _nextTensor)
        {
            throw new InvalidOperationException(
                $"The .pt writer reached exported tensor {index} while tensor {_nextTensor} was next; the export streams tensors in the state dict's order only.");
        }

        _nextTensor++;
        _chunks.CopyTo(output, byteCount);
    }
}
