using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Optim.Checkpoints;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Serialization;
using Orleans.Storage;

namespace Orleans.Optim.Hosting;

/// <summary>Configures a silo for Orleans.Optim from <see cref="SiloSettings"/>.</summary>
public static class OptimizerSiloConfiguration
{
    /// <summary>Blob container of the grain state with <see cref="SiloClustering.AzureStorage"/>.</summary>
    public const string AzureBlobContainerName = "orleans-optim-grains";

    /// <summary>
    /// Configures the clustering and grain storage that <see cref="SiloSettings.Clustering"/> chooses, endpoints on
    /// 127.0.0.1, and the optimizer grains.
    /// </summary>
    /// <remarks>
    /// <see cref="SiloClustering.Localhost"/> is the embedded default for one machine: all traffic stays on loopback,
    /// grain state is kept in memory, and the cluster does not survive losing the primary silo.
    /// <see cref="SiloClustering.AzureStorage"/> keeps the membership table in Azure Table storage and the grain state
    /// in Azure Blob storage, so no silo is special and the state outlives the silos.
    /// </remarks>
    /// <exception cref="ArgumentException">The settings are invalid (see <see cref="SiloSettings.Validate"/>).</exception>
    public static ISiloBuilder ConfigureOptimizerSilo(this ISiloBuilder silo, SiloSettings settings)
    {
        settings.Validate();
        if (settings.Clustering == SiloClustering.AzureStorage)
        {
            ConfigureAzureStorage(silo, settings);
        }
        else
        {
            ConfigureLocalhost(silo, settings);
        }

        // A shard call waits up to the step timeout for the other ranks, so silo-to-silo requests must be allowed longer.
        silo.Configure<SiloMessagingOptions>(options => options.ResponseTimeout = settings.Shards.StepTimeout + TimeSpan.FromSeconds(30));
        silo.AddOptimizerGrains(shards =>
        {
            shards.StepTimeout = settings.Shards.StepTimeout;
            shards.PersistEverySteps = settings.Shards.PersistEverySteps;

            // In-memory storage ends with the silos, so writing to it while they shut down only produces errors.
            // A killed silo writes nothing, so its shards come back at their last written step; the coordinator then
            // rolls the optimizer back to the newest sharded checkpoint.
            shards.PersistOnDeactivation = settings.Clustering == SiloClustering.AzureStorage && settings.Shards.PersistOnDeactivation;
        },
        checkpoints =>
        {
            checkpoints.Path = settings.Checkpoints.Path;
            checkpoints.KeepLast = settings.Checkpoints.KeepLast;
            checkpoints.RecoveryTimeout = settings.Checkpoints.RecoveryTimeout;
        });
        return silo;
    }

    private static void ConfigureLocalhost(ISiloBuilder silo, SiloSettings settings)
    {
        var primary = settings.PrimarySiloPort is { } port && port != settings.SiloPort
            ? new IPEndPoint(IPAddress.Loopback, port)
            : null;

        silo.UseLocalhostClustering(settings.SiloPort, settings.GatewayPort, primary, settings.ServiceId, settings.ClusterId);
        silo.AddMemoryGrainStorage(OptimizerSiloBuilderExtensions.StorageName);
    }

    private static void ConfigureAzureStorage(ISiloBuilder silo, SiloSettings settings)
    {
        string connectionString = settings.AzureStorageConnectionString!;

        // The silo listens on, and advertises in the membership table, 127.0.0.1 only.
        silo.ConfigureEndpoints(IPAddress.Loopback, settings.SiloPort, settings.GatewayPort, listenOnAnyHostAddress: false);
        silo.Configure<ClusterOptions>(options =>
        {
            options.ClusterId = settings.ClusterId;
            options.ServiceId = settings.ServiceId;
        });
        silo.UseAzureStorageClustering(options => options.TableServiceClient = new TableServiceClient(connectionString));

        // Orleans 10 stores grain state as Newtonsoft JSON unless the provider is given another serializer. The shard
        // state is mostly byte arrays, which JSON writes as base64 with type names around them: a 300-element Adam
        // shard takes 4,020 bytes with the Orleans binary serializer and 5,926 as JSON. Neither format reads the
        // other's blobs, so every silo that shares the container must use this one.
        silo.AddAzureBlobGrainStorage(OptimizerSiloBuilderExtensions.StorageName, (OptionsBuilder<AzureBlobStorageOptions> options) =>
            options.Configure<Serializer>((blob, serializer) =>
            {
                blob.BlobServiceClient = new BlobServiceClient(connectionString);
                blob.ContainerName = AzureBlobContainerName;
                blob.GrainStorageSerializer = new OrleansGrainStorageSerializer(serializer);
            }));

        // Sharded checkpoints go to the same account, so that any silo can restore any shard after a silo is lost.
        silo.Services.AddSingleton<ICheckpointStore>(_ => new AzureBlobCheckpointStore(connectionString, settings.Checkpoints.AzureContainer));
    }
}
