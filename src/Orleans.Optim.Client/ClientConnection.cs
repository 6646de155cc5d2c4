using System.Net;
using Orleans.Configuration;
using Orleans.Hosting;

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

        client.UseStaticClustering(gatewayPorts.Select(port => new IPEndPoint(IPAddress.Loopback, port)).ToArray());
        client.Configure<ClusterOptions>(options =>
        {
            options.ClusterId = clusterId;
            options.ServiceId = serviceId;
        });
        client.Configure<ClientMessagingOptions>(options => options.ResponseTimeout = responseTimeout ?? TimeSpan.FromMinutes(2));

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
