using Orleans.Optim.Algorithms;
using Orleans.Optim.Engine;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Layout;
using Orleans.Optim.StateDicts;
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
    /// <param name="fetch">Reads ranges of the shards' tensor bytes at the headers' step, one reply per range.</param>
    /// <exception cref="OptimizerFaultException">Shards of one parameter disagree on their state.</exception>
    public StreamedStateExport(
        OptimizerLayout layout,
        IReadOnlyList<IReadOnlyDictionary<string, object?>> groups,
        IReadOnlyList<ShardStateChunk> headers,
        Func<IReadOnlyList<ChunkRequest>, Task<ShardStateChunk[]>> fetch)
    {
        var ranges = new List<ChunkRequest>();
        var stateDict = new OrderedDictionary<object, object?>();
        int tensorCount = 0;
        foreach (var (parameter, shards, state) in ShardStateHeaders.StatesInOrder(layout, headers))
        {
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

        var paramGroups = StateDictAssembler.BuildGroups(layout, groups);
        Tree = new OptimizerStateDict(new(), paramGroups).ToPython();
        Tree["state"] = stateDict;
        TensorBytes = ranges.Sum(r => r.Count);
        _chunks = new ShardChunkStream(ShardChunkStream.Plan(ranges, ShardChunkStream.StreamedChunkBytes), fetch);
    }

    /// <summary>The state dict as a Python value tree for <see cref="PtWriter"/>.</summary>
    public OrderedDictionary<object, object?> Tree { get; }

    /// <summary>Number of tensor bytes the shards send during the write.</summary>
    public long TensorBytes { get; }

    /// <inheritdoc/>
    public void Dispose() => _chunks.Dispose();

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
