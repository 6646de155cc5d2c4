using Orleans.Optim.Tensors;

namespace Orleans.Optim.Layout;

/// <summary>A parameter with its torch param ID and group.</summary>
/// <param name="Id">Param ID: the position over all groups' params, in order, starting at 0.</param>
/// <param name="Name">Name, or <see langword="null"/> when unnamed.</param>
/// <param name="Shape">Sizes of each dimension.</param>
/// <param name="GroupIndex">Index of the param group that contains the parameter.</param>
public sealed record ParameterInfo(long Id, string? Name, long[] Shape, int GroupIndex)
{
    /// <summary>Number of elements.</summary>
    public long NumElements => Tensor.CountElements(Shape);
}

/// <summary>A contiguous slice <c>[Offset, Offset + Length)</c> of one flattened parameter, held by one shard.</summary>
/// <param name="Index">Shard index over the whole optimizer, starting at 0.</param>
/// <param name="ParamId">Param ID of the parameter the slice belongs to.</param>
/// <param name="Offset">First element of the slice in the flattened parameter.</param>
/// <param name="Length">Number of elements.</param>
public sealed record ShardInfo(int Index, long ParamId, long Offset, int Length);

/// <summary>
/// The fixed structure of an optimizer: its parameters with torch's param IDs, the groups they belong to, and the shard map.
/// </summary>
public sealed record OptimizerLayout
{
    /// <summary>Torch class name of the algorithm.</summary>
    public required string Algorithm { get; init; }

    /// <summary>Parameters by param ID.</summary>
    public required IReadOnlyList<ParameterInfo> Parameters { get; init; }

    /// <summary>Shards by shard index, grouped by parameter in param-ID order.</summary>
    public required IReadOnlyList<ShardInfo> Shards { get; init; }

    /// <summary>Number of param groups.</summary>
    public required int GroupCount { get; init; }

    /// <summary>Number of data-parallel workers per synchronous step.</summary>
    public required int WorldSize { get; init; }

    /// <summary>How the workers' gradients are combined.</summary>
    public required GradientReduction Reduction { get; init; }

    /// <summary>Maximum number of elements per shard.</summary>
    public required int MaxShardElements { get; init; }

    /// <summary>Whether a step with any non-finite reduced gradient is skipped on every shard.</summary>
    public bool SkipNonFiniteSteps { get; init; }

    /// <summary>Returns the param IDs of group <paramref name="groupIndex"/>, in order.</summary>
    public IReadOnlyList<long> GroupParamIds(int groupIndex) =>
        Parameters.Where(p => p.GroupIndex == groupIndex).Select(p => p.Id).ToList();

    /// <summary>Returns the shards of a parameter, in offset order.</summary>
    public IReadOnlyList<ShardInfo> ShardsOf(long paramId) => Shards.Where(s => s.ParamId == paramId).ToList();

    /// <summary>
    /// Assigns param IDs as torch does (in group order, then in order within each group) and splits every parameter
    /// into shards of at most <see cref="OptimizerSpec.MaxShardElements"/> elements.
    /// </summary>
    public static OptimizerLayout Plan(OptimizerSpec spec)
    {
        var parameters = new List<ParameterInfo>();
        var shards = new List<ShardInfo>();
        for (int g = 0; g < spec.Groups.Count; g++)
        {
            foreach (var parameter in spec.Groups[g].Parameters)
            {
                var info = new ParameterInfo(parameters.Count, parameter.Name, parameter.Shape, g);
                parameters.Add(info);
                AddShards(shards, info, spec.MaxShardElements);
            }
        }

        return new OptimizerLayout
        {
            Algorithm = spec.Algorithm,
            Parameters = parameters,
            Shards = shards,
            GroupCount = spec.Groups.Count,
            WorldSize = spec.WorldSize,
            Reduction = spec.Reduction,
            MaxShardElements = spec.MaxShardElements,
            SkipNonFiniteSteps = spec.SkipNonFiniteSteps,
        };
    }

    private static void AddShards(List<ShardInfo> shards, ParameterInfo parameter, int maxShardElements)
    {
        long numel = parameter.NumElements;

        // An empty parameter still gets one (empty) shard, so every parameter has state and a place in the map.
        long offset = 0;
        do
        {
            int length = (int)Math.Min(maxShardElements, numel - offset);
            shards.Add(new ShardInfo(shards.Count, parameter.Id, offset, length));
            offset += length;
        }
        while (offset < numel);
    }
}
