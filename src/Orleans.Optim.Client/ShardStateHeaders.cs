using Orleans.Optim.Algorithms;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Client;

/// <summary>Turns the shards' <see cref="ShardStateChunk"/> headers into each parameter's state, in torch's state order.</summary>
internal static class ShardStateHeaders
{
    /// <summary>
    /// Decodes every parameter's state from its shards' headers, checks that the shards agree, and returns the
    /// parameters that have state in torch's state order, each with its shards in offset order.
    /// </summary>
    /// <param name="layout">The optimizer's parameters and shard map.</param>
    /// <param name="headers">Each shard's header, by shard index, all read at one step.</param>
    /// <exception cref="OptimizerFaultException">Shards of one parameter disagree on their state.</exception>
    public static List<(ParameterInfo Parameter, List<ShardInfo> Shards, SliceState State)> StatesInOrder(OptimizerLayout layout, IReadOnlyList<ShardStateChunk> headers)
    {
        var shardsByParam = layout.Shards.GroupBy(s => s.ParamId).ToDictionary(g => g.Key, g => g.OrderBy(s => s.Offset).ToList());
        var parameters = new List<(StateOrderKey Key, ParameterInfo Parameter, List<ShardInfo> Shards, SliceState State)>();
        foreach (var parameter in layout.Parameters)
        {
            var shards = shardsByParam[parameter.Id];
            var state = CheckedState(parameter, shards, headers);
            if (state is not null)
            {
                var first = headers[shards[0].Index];
                parameters.Add((new StateOrderKey(first.OrderStep, first.OrderPosition), parameter, shards, state));
            }
        }

        return [.. parameters.OrderBy(p => p.Key).Select(p => (p.Parameter, p.Shards, p.State))];
    }

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
}
