using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.Optim.Placement;
using Orleans.Optim.Shards;

namespace Orleans.Optim.Hosting;

/// <summary>Registers the optimizer grains on a silo.</summary>
public static class OptimizerSiloBuilderExtensions
{
    /// <summary>Name of the grain storage provider the coordinator and shard grains use.</summary>
    public const string StorageName = "optim";

    /// <summary>
    /// Adds the shard placement director and shard options. The silo must also have a grain storage provider named
    /// <see cref="StorageName"/>, for example <c>AddMemoryGrainStorage(StorageName)</c>.
    /// </summary>
    public static ISiloBuilder AddOptimizerGrains(this ISiloBuilder builder, Action<ShardOptions>? configureShards = null)
    {
        builder.Services.AddPlacementDirector<SpreadShardsPlacement, SpreadShardsPlacementDirector>();
        var options = builder.Services.AddOptions<ShardOptions>();
        if (configureShards is not null)
        {
            options.Configure(configureShards);
        }

        return builder;
    }
}
