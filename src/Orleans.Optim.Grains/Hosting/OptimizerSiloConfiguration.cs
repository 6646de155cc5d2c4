using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Optim.Checkpoints;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Optim.Security;
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
    /// <see cref="SiloSettings.ListenAddress"/>, mutual TLS when <see cref="SiloSettings.Tls"/> names a certificate,
    /// and the optimizer grains.
    /// </summary>
    /// <remarks>
    /// <see cref="SiloClustering.Localhost"/> is the embedded default for one machine: all traffic stays on loopback,
    /// grain state is kept in memory, and the cluster does not survive losing the primary silo.
    /// <see cref="SiloClustering.AzureStorage"/> keeps the membership table in Azure Table storage and the grain state
    /// in Azure Blob storage, so no silo is special and the state outlives the silos.
    /// </remarks>
    /// <exception cref="ArgumentException">
    /// The settings are invalid (see <see cref="SiloSettings.Validate"/>), or the certificate files are not usable
    /// (see <see cref="ClusterCertificate.Load"/>).
    /// </exception>
    public static ISiloBuilder ConfigureOptimizerSilo(this ISiloBuilder silo, SiloSettings settings)
    {
        settings.Validate();
        if (settings.Tls.IsEnabled)
        {
            silo.UseOptimizerTls(ClusterCertificate.Load(settings.Tls, SiloSettings.TlsNames, CertificateUse.Silo));
        }

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

    /// <summary>
    /// Makes the silo and gateway ports accept only TLS connections from peers that present a certificate the
    /// cluster's rule accepts, and makes the silo present <paramref name="certificate"/> on its connections to other
    /// silos. <see cref="ConfigureOptimizerSilo"/> calls it when <see cref="SiloSettings.Tls"/> names a certificate.
    /// The certificate is also registered as a service, so the host can log which one it presents.
    /// </summary>
    public static ISiloBuilder UseOptimizerTls(this ISiloBuilder silo, ClusterCertificate certificate)
    {
        silo.Services.AddSingleton(certificate);

        // NOTE: Orleans' TLS middleware logs a warning with a stack trace for every failed handshake, with no rate
        // limit, so a client that retries without the right certificate adds about two entries a second per gateway.
        silo.Configure<SiloConnectionOptions>(options =>
        {
            options.ConfigureSiloInboundConnection(connection => connection.UseServerTls(certificate.CreateServerOptions(LoggerFactory(connection))));
            options.ConfigureGatewayInboundConnection(connection => connection.UseServerTls(certificate.CreateServerOptions(LoggerFactory(connection))));
            options.ConfigureSiloOutboundConnection(connection => connection.UseClientTls(certificate.CreateClientOptions(LoggerFactory(connection))));
        });
        return silo;
    }

    private static ILoggerFactory? LoggerFactory(IConnectionBuilder connection) => connection.ApplicationServices.GetService<ILoggerFactory>();

    private static void ConfigureLocalhost(ISiloBuilder silo, SiloSettings settings)
    {
        // Orleans' UseLocalhostClustering with the configured loopback address in place of 127.0.0.1.
        var address = settings.ParseListenAddress();
        var primary = settings.PrimarySiloPort is { } port && port != settings.SiloPort
            ? new IPEndPoint(address, port)
            : null;

        silo.ConfigureEndpoints(address, settings.SiloPort, settings.GatewayPort, listenOnAnyHostAddress: false);
        silo.UseDevelopmentClustering(primary);
        ConfigureClusterIds(silo, settings);
        silo.AddMemoryGrainStorage(OptimizerSiloBuilderExtensions.StorageName);
    }

    private static void ConfigureAzureStorage(ISiloBuilder silo, SiloSettings settings)
    {
        string connectionString = settings.AzureStorageConnectionString!;

        // The silo advertises its listen address in the membership table, and listens on every address of the host
        // only when ListenOnAnyAddress is set.
        var address = settings.ParseListenAddress();
        silo.Configure<EndpointOptions>(options =>
        {
            options.AdvertisedIPAddress = address;
            options.SiloPort = settings.SiloPort;
            options.GatewayPort = settings.GatewayPort;
            if (settings.ListenOnAnyAddress)
            {
                var any = address.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any;
                options.SiloListeningEndpoint = new IPEndPoint(any, settings.SiloPort);
                options.GatewayListeningEndpoint = new IPEndPoint(any, settings.GatewayPort);
            }
        });
        ConfigureClusterIds(silo, settings);
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

    private static void ConfigureClusterIds(ISiloBuilder silo, SiloSettings settings) =>
        silo.Configure<ClusterOptions>(options =>
        {
            options.ClusterId = settings.ClusterId;
            options.ServiceId = settings.ServiceId;
        });
}
