using System.Net;
using Azure.Data.Tables;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Optim.Security;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Client;

/// <summary>Configures an Orleans client to reach silos started separately.</summary>
public static class ClientConnection
{
    /// <summary>Default cluster id, the same as the silo host's default.</summary>
    public const string DefaultClusterId = "orleans-optim";

    /// <summary>Default service id, the same as the silo host's default.</summary>
    public const string DefaultServiceId = "orleans-optim";

    /// <summary>Default time a client keeps retrying its first connection to the gateways.</summary>
    public static readonly TimeSpan DefaultConnectTimeout = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Connects through the given gateway ports on 127.0.0.1, with a response timeout long enough for synchronous
    /// steps that wait for slow workers. The first connection is retried for <paramref name="connectTimeout"/> and
    /// then fails with the gateway error.
    /// </summary>
    /// <exception cref="ArgumentException">No gateway port, or a port outside 1..65535.</exception>
    public static IClientBuilder ConfigureOptimizerClient(
        this IClientBuilder client,
        IReadOnlyList<int> gatewayPorts,
        string clusterId = DefaultClusterId,
        string serviceId = DefaultServiceId,
        TimeSpan? responseTimeout = null,
        TimeSpan? connectTimeout = null)
    {
        if (gatewayPorts.Count == 0)
        {
            throw new ArgumentException("Give at least one gateway port, such as 30000.", nameof(gatewayPorts));
        }

        foreach (int port in gatewayPorts)
        {
            if (port is < 1 or > 65535)
            {
                throw new ArgumentException($"Invalid gateway port {port}: expected a TCP port from 1 to 65535.", nameof(gatewayPorts));
            }
        }

        var gateways = gatewayPorts.Select(port => new IPEndPoint(IPAddress.Loopback, port)).ToList();
        return client.ConfigureOptimizerClient(gateways, clusterId, serviceId, responseTimeout, connectTimeout);
    }

    /// <summary>
    /// Connects through the given gateways on loopback addresses (such as 127.0.0.1 or ::1), the addresses where
    /// silos with Localhost clustering listen, with the same response timeout and connection retries as the overload
    /// that takes ports.
    /// </summary>
    /// <exception cref="ArgumentException">No gateway, an address that is not loopback, or a port outside 1..65535.</exception>
    public static IClientBuilder ConfigureOptimizerClient(
        this IClientBuilder client,
        IReadOnlyList<IPEndPoint> gateways,
        string clusterId = DefaultClusterId,
        string serviceId = DefaultServiceId,
        TimeSpan? responseTimeout = null,
        TimeSpan? connectTimeout = null)
    {
        if (gateways.Count == 0)
        {
            throw new ArgumentException("Give at least one gateway, such as 127.0.0.1:30000.", nameof(gateways));
        }

        foreach (var gateway in gateways)
        {
            if (!IPAddress.IsLoopback(gateway.Address))
            {
                throw new ArgumentException(
                    $"Invalid gateway {gateway}: expected a loopback address such as 127.0.0.1 or ::1, because silos with " +
                    "Localhost clustering listen there only. For silos on other addresses, use AzureStorage clustering and " +
                    $"{nameof(ConfigureOptimizerClientWithAzureStorage)}.",
                    nameof(gateways));
            }

            if (gateway.Port is < 1 or > 65535)
            {
                throw new ArgumentException($"Invalid gateway port {gateway.Port}: expected a TCP port from 1 to 65535.", nameof(gateways));
            }
        }

        client.UseStaticClustering(gateways.ToArray());
        return ConfigureCommon(client, clusterId, serviceId, responseTimeout, connectTimeout);
    }

    /// <summary>
    /// Connects through the gateways that the silos' Azure Table membership lists, in the storage account of
    /// <paramref name="connectionString"/> (Azurite on one machine), with the same response timeout and connection
    /// retries as <see cref="ConfigureOptimizerClient(IClientBuilder, IReadOnlyList{int}, string, string, TimeSpan?, TimeSpan?)"/>. The silos must run with
    /// <c>Optim:Silo:Clustering=AzureStorage</c>, the same connection string and the same cluster id.
    /// </summary>
    /// <exception cref="ArgumentException">The connection string is empty or not a storage connection string.</exception>
    public static IClientBuilder ConfigureOptimizerClientWithAzureStorage(
        this IClientBuilder client,
        string connectionString,
        string clusterId = DefaultClusterId,
        string serviceId = DefaultServiceId,
        TimeSpan? responseTimeout = null,
        TimeSpan? connectTimeout = null)
    {
        var tables = CreateTableServiceClient(connectionString);
        client.UseAzureStorageClustering(options => options.TableServiceClient = tables);
        return ConfigureCommon(client, clusterId, serviceId, responseTimeout, connectTimeout);
    }

    /// <summary>
    /// Connects to the gateways with mutual TLS: the client presents <paramref name="certificate"/> and accepts a
    /// gateway's certificate by the cluster's rule (see <see cref="ClusterCertificate"/>). The silos must run with
    /// <c>Optim:Silo:Tls:CertificatePath</c> set to a certificate that the rule accepts.
    /// </summary>
    public static IClientBuilder UseOptimizerTls(this IClientBuilder client, ClusterCertificate certificate)
    {
        client.Configure<ClientConnectionOptions>(options => options.ConfigureConnection(connection =>
            connection.UseClientTls(certificate.CreateClientOptions(connection.ApplicationServices.GetService<ILoggerFactory>()))));
        return client;
    }

    private static TableServiceClient CreateTableServiceClient(string connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new ArgumentException(
                "The Azure Storage connection string is empty; give the one the silos use (Optim:Silo:AzureStorageConnectionString).",
                nameof(connectionString));
        }

        // The client retries its whole connection until the connect timeout, so one table request gives up sooner
        // than with the SDK's defaults (3 retries from 0.8 s apart, 100 s network timeout).
        var options = new TableClientOptions();
        options.Retry.MaxRetries = 2;
        options.Retry.Delay = TimeSpan.FromMilliseconds(500);
        options.Retry.MaxDelay = TimeSpan.FromSeconds(2);
        options.Retry.NetworkTimeout = TimeSpan.FromSeconds(10);
        try
        {
            return new TableServiceClient(connectionString, options);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
        {
            // The message leaves out the string itself, because it contains the account key.
            throw new ArgumentException(
                $"Invalid Azure Storage connection string: {e.Message} Expected one with DefaultEndpointsProtocol, AccountName, " +
                "AccountKey and TableEndpoint, such as the one `scripts/azurite.sh connection-string` prints.",
                nameof(connectionString),
                e);
        }
    }

    private static IClientBuilder ConfigureCommon(
        IClientBuilder client,
        string clusterId,
        string serviceId,
        TimeSpan? responseTimeout,
        TimeSpan? connectTimeout)
    {
        client.Configure<ClusterOptions>(options =>
        {
            options.ClusterId = clusterId;
            options.ServiceId = serviceId;
        });
        client.Configure<ClientMessagingOptions>(options => options.ResponseTimeout = responseTimeout ?? TimeSpan.FromMinutes(2));
        client.Services.UseLargeTransportBuffers();

        var deadline = DateTime.UtcNow + (connectTimeout ?? DefaultConnectTimeout);
        client.UseConnectionRetryFilter(async (_, cancellationToken) =>
        {
            if (DateTime.UtcNow >= deadline)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken);
            return true;
        });
        return client;
    }
}
