using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Orleans.Optim.Checkpoints;
using Orleans.Hosting;
using Orleans.Optim.Placement;
using Orleans.Optim.Shards;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Hosting;

/// <summary>Registers the optimizer grains on a silo.</summary>
public static class OptimizerSiloBuilderExtensions
{
    /// <summary>Name of the grain storage provider the coordinator and shard grains use.</summary>
    public const string StorageName = "optim";

    /// <summary>
    /// Adds the shard placement director and shard options. The silo must also have a grain storage provider named
    /// <see cref="StorageName"/>, for example <c>AddMemoryGrainStorage(StorageName)</c>. The socket transport gets
    /// large buffer blocks (<see cref="TransportBuffers.UseLargeTransportBuffers"/>) for the tensor payloads.
    /// </summary>
    public static ISiloBuilder AddOptimizerGrains(
        this ISiloBuilder builder,
        Action<ShardOptions>? configureShards = null,
        Action<CheckpointOptions>? configureCheckpoints = null)
    {
        builder.Services.AddPlacementDirector<SpreadShardsPlacement, SpreadShardsPlacementDirector>();
        builder.Services.UseLargeTransportBuffers();
        var options = builder.Services.AddOptions<ShardOptions>();
        if (configureShards is not null)
        {
            options.Configure(configureShards);
        }

        var checkpoints = builder.Services.AddOptions<CheckpointOptions>();
        if (configureCheckpoints is not null)
        {
            checkpoints.Configure(configureCheckpoints);
        }

        // A store registered before this call (for example Azure Blob storage) wins over the local folder.
        builder.Services.TryAddSingleton<ICheckpointStore>(services =>
            new LocalFolderCheckpointStore(services.GetRequiredService<IOptions<CheckpointOptions>>().Value.Path));
        return builder;
    }
}
