using Orleans.Optim.Grains;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace Orleans.Optim.Placement;

/// <summary>
/// Placement strategy that spreads an optimizer's shards evenly over the silos: shard <c>i</c> goes to the silo at
/// position <c>(hash(optimizer) + i) mod silo count</c> in address order.
/// </summary>
/// <remarks>
/// Orleans' default placement put 40 new shards on one silo in a test here, so shards need an explicit choice.
/// Placement decides where a shard is activated. When a silo joins, the coordinator's rebalance migrates a fair
/// share of the shards to it with a placement hint, which this director follows.
/// </remarks>
[Serializable, GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class SpreadShardsPlacement : PlacementStrategy
{
}

/// <summary>Places a grain class with <see cref="SpreadShardsPlacement"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SpreadShardsPlacementAttribute : PlacementAttribute
{
    /// <summary>Creates the attribute.</summary>
    public SpreadShardsPlacementAttribute()
        : base(new SpreadShardsPlacement())
    {
    }
}

/// <summary>Picks the silo for a shard by its index.</summary>
internal sealed class SpreadShardsPlacementDirector : IPlacementDirector
{
    /// <inheritdoc/>
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);
        if (silos.Length == 0)
        {
            throw new OrleansException($"No compatible silo to place {target.GrainIdentity} on.");
        }

        // A rebalance moves a shard by migrating it with a hint that names the silo it should go to.
        if (IPlacementDirector.GetPlacementHint(target.RequestContextData, silos) is { } hinted)
        {
            return Task.FromResult(hinted);
        }

        var ordered = silos.OrderBy(s => s.Endpoint.ToString(), StringComparer.Ordinal).ThenBy(s => s.Generation).ToArray();
        var (optimizer, index) = ShardKeys.Parse(target.GrainIdentity.Key.ToString()!);
        int position = (int)((StableHash(optimizer) + (uint)index) % (uint)ordered.Length);
        return Task.FromResult(ordered[position]);
    }

    // FNV-1a: string.GetHashCode differs between processes, and every silo must compute the same placement.
    private static uint StableHash(string text)
    {
        uint hash = 2166136261;
        foreach (char c in text)
        {
            hash = (hash ^ c) * 16777619;
        }

        return hash;
    }
}
