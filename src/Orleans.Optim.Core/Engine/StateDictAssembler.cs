using System.Buffers.Binary;
using Orleans.Optim.Algorithms;
using Orleans.Optim.Layout;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Engine;

/// <summary>One shard's contribution to a state dict: its slice of the parameter's state, read at one step.</summary>
/// <param name="Shard">Which slice.</param>
/// <param name="State">The slice's state, or <see langword="null"/> when the parameter has none yet.</param>
/// <param name="OrderKey">Where the parameter's state sits in torch's state order.</param>
public sealed record SliceSnapshot(ShardInfo Shard, SliceState? State, StateOrderKey OrderKey);

/// <summary>
/// Builds torch's state dict from the shards' slices: joins each parameter's slices, orders the state as torch
/// created it, and writes the param groups with <c>params</c> last.
/// </summary>
public static class StateDictAssembler
{
    /// <summary>Key under which a param group lists its parameters' names, as newer PyTorch versions write it for groups built from <c>named_parameters()</c>.</summary>
    public const string ParamNamesKey = "param_names";

    /// <summary>Assembles the state dict.</summary>
    /// <param name="layout">The optimizer's parameters and shard map.</param>
    /// <param name="groups">Each group's hyperparameters, without <c>params</c>.</param>
    /// <param name="slices">One snapshot per shard of the layout, in any order.</param>
    /// <exception cref="InvalidOperationException">Shards of one parameter disagree, or a shard is missing.</exception>
    public static OptimizerStateDict Assemble(
        OptimizerLayout layout,
        IReadOnlyList<IReadOnlyDictionary<string, object?>> groups,
        IReadOnlyList<SliceSnapshot> slices)
    {
        var byParam = slices.GroupBy(s => s.Shard.ParamId).ToDictionary(g => g.Key, g => g.OrderBy(s => s.Shard.Offset).ToList());

        var stateWithKeys = new List<(StateOrderKey Key, long ParamId, OrderedDictionary<string, object?> Entries)>();
        foreach (var parameter in layout.Parameters)
        {
            if (!byParam.TryGetValue(parameter.Id, out var parts) || parts.Count != layout.ShardsOf(parameter.Id).Count)
            {
                throw new InvalidOperationException($"Missing shards of param {parameter.Id}: every shard must contribute to a state dict.");
            }

            var entries = JoinSlices(parameter, parts);
            if (entries is not null)
            {
                stateWithKeys.Add((parts[0].OrderKey, parameter.Id, entries));
            }
        }

        var state = new OrderedDictionary<long, OrderedDictionary<string, object?>>();
        foreach (var (_, paramId, entries) in stateWithKeys.OrderBy(s => s.Key))
        {
            state[paramId] = entries;
        }

        return new OptimizerStateDict(state, BuildGroups(layout, groups));
    }

    /// <summary>Builds torch's <c>param_groups</c>: hyperparameters, then <c>param_names</c> when every parameter is named, then <c>params</c>.</summary>
    public static List<OrderedDictionary<string, object?>> BuildGroups(OptimizerLayout layout, IReadOnlyList<IReadOnlyDictionary<string, object?>> groups)
    {
        bool allNamed = layout.Parameters.All(p => p.Name is not null);
        var result = new List<OrderedDictionary<string, object?>>();
        for (int g = 0; g < groups.Count; g++)
        {
            var group = new OrderedDictionary<string, object?>(groups[g]);
            var members = layout.Parameters.Where(p => p.GroupIndex == g).ToList();
            if (allNamed)
            {
                group[ParamNamesKey] = members.Select(p => (object?)p.Name).ToList();
            }

            group["params"] = members.Select(p => (object?)p.Id).ToList();
            result.Add(group);
        }

        return result;
    }

    /// <summary>Turns one scalar state entry into its Python value.</summary>
    public static object? ScalarValue(StateEntry entry) => entry.Kind switch
    {
        StateValueKind.None => null,
        StateValueKind.ScalarTensor => ScalarTensor(entry.Number, entry.ScalarDType),
        StateValueKind.Int => (long)entry.Number,
        StateValueKind.Float => entry.Number,
        _ => throw new InvalidOperationException($"State entry '{entry.Name}' is a tensor, not a scalar."),
    };

    private static OrderedDictionary<string, object?>? JoinSlices(ParameterInfo parameter, List<SliceSnapshot> parts)
    {
        var first = parts[0];
        if (parts.Any(p => (p.State is null) != (first.State is null) || p.OrderKey != first.OrderKey))
        {
            throw new InvalidOperationException($"Shards of param {parameter.Id} disagree on whether and when its state was created.");
        }

        if (first.State is null)
        {
            return null;
        }

        var entries = new OrderedDictionary<string, object?>();
        foreach (var entry in first.State.Entries)
        {
            var matching = parts.Select(p => p.State!.Find(entry.Name)).ToList();
            if (matching.Any(m => m is null || m.Kind != entry.Kind || m.Number != entry.Number))
            {
                throw new InvalidOperationException($"Shards of param {parameter.Id} disagree on state entry '{entry.Name}'.");
            }

            if (entry.Kind != StateValueKind.ParamTensor)
            {
                entries[entry.Name] = ScalarValue(entry);
                continue;
            }

            var data = new byte[checked(parameter.NumElements * sizeof(float))];
            foreach (var (part, slice) in parts.Zip(matching))
            {
                var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(slice!.Values.AsSpan());
                bytes.CopyTo(data.AsSpan(checked((int)(part.Shard.Offset * sizeof(float)))));
            }

            entries[entry.Name] = new Tensor(DType.Float32, parameter.Shape, data);
        }

        return entries;
    }

    private static Tensor ScalarTensor(double value, DType dtype)
    {
        switch (dtype)
        {
            case DType.Float32:
                return Tensor.Scalar((float)value);
            case DType.Float64:
                var doubleBytes = new byte[8];
                BinaryPrimitives.WriteDoubleLittleEndian(doubleBytes, value);
                return new Tensor(DType.Float64, [], doubleBytes);
            case DType.Int64:
                var longBytes = new byte[8];
                BinaryPrimitives.WriteInt64LittleEndian(longBytes, (long)value);
                return new Tensor(DType.Int64, [], longBytes);
            default:
                throw new InvalidOperationException($"Unsupported dtype {dtype.TorchName()} for a scalar state entry.");
        }
    }
}
