using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Optim.Client;
using Orleans.Optim.Hosting;

namespace Orleans.Optim.Cli.Hosting;

/// <summary>
/// A cluster of several real silos inside this process, listening on free ports of 127.0.0.1, with a client that
/// connects to them through their gateways: the default when the command line names no cluster.
/// </summary>
public sealed class EmbeddedCluster : IAsyncDisposable
{
    private readonly List<IHost> _silos;
    private readonly IHost _client;

    private EmbeddedCluster(List<IHost> silos, IHost client)
    {
        _silos = silos;
        _client = client;
    }

    /// <summary>The client connected to the silos.</summary>
    public IClusterClient Client => _client.Services.GetRequiredService<IClusterClient>();

    /// <summary>Number of silos.</summary>
    public int SiloCount => _silos.Count;

    /// <summary>Starts <paramref name="siloCount"/> silos and a client.</summary>
    /// <param name="siloCount">Number of silos, at least 1.</param>
    /// <param name="stepTimeout">Shard step timeout; <see langword="null"/> for the default.</param>
    /// <param name="logLevel">Minimum level of the silos' and client's console logs.</param>
    /// <param name="checkpointPath">Folder of the sharded checkpoint store, or <see langword="null"/> for <c>checkpoints</c>.</param>
    public static async Task<EmbeddedCluster> StartAsync(int siloCount, TimeSpan? stepTimeout = null, LogLevel logLevel = LogLevel.Warning, string? checkpointPath = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(siloCount, 1);

        // A fresh cluster id keeps this cluster apart from any other one on this machine's loopback.
        string clusterId = "embedded-" + Guid.NewGuid().ToString("N")[..12];
        var siloPorts = FreePorts(siloCount);
        var gatewayPorts = FreePorts(siloCount);
        var silos = new List<IHost>();
        try
        {
            for (int i = 0; i < siloCount; i++)
            {
                var settings = new SiloSettings
                {
                    ClusterId = clusterId,
                    SiloPort = siloPorts[i],
                    GatewayPort = gatewayPorts[i],
                    PrimarySiloPort = siloPorts[0],
                };
                if (stepTimeout is { } timeout)
                {
                    settings.Shards.StepTimeout = timeout;
                }

                if (checkpointPath is not null)
                {
                    settings.Checkpoints.Path = checkpointPath;
                }

                var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
                ConfigureLogging(builder, logLevel);
                builder.UseOrleans(silo => silo.ConfigureOptimizerSilo(settings));
                var host = builder.Build();
                silos.Add(host);
                await host.StartAsync();
            }

            var clientBuilder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
            ConfigureLogging(clientBuilder, logLevel);
            clientBuilder.UseOrleansClient(client => client.ConfigureOptimizerClient(gatewayPorts, clusterId, SiloSettingsDefaults.ServiceId));
            var clientHost = clientBuilder.Build();
            await clientHost.StartAsync();
            return new EmbeddedCluster(silos, clientHost);
        }
        catch
        {
            foreach (var silo in silos)
            {
                await StopAsync(silo);
            }

            throw;
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await StopAsync(_client);
        for (int i = _silos.Count - 1; i >= 0; i--)
        {
            await StopAsync(_silos[i]);
        }
    }

    private static async Task StopAsync(IHost host)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await host.StopAsync(timeout.Token);
        host.Dispose();
    }

    private static void ConfigureLogging(HostApplicationBuilder builder, LogLevel logLevel)
    {
        // Logs go to standard error so that standard output carries only the command's results.
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(options => options.SingleLine = true);
        builder.Logging.AddConsole(options => options.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.AddFilter("Orleans", LogLevel.Error);
        builder.Logging.AddFilter("Orleans.Optim", LogLevel.Warning);
        builder.Logging.SetMinimumLevel(logLevel);
    }

    private static int[] FreePorts(int count)
    {
        // Hold all listeners open until every port is chosen, so the same port is not handed out twice.
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        try
        {
            listeners.ForEach(l => l.Start());
            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            listeners.ForEach(l => l.Stop());
        }
    }

    private static class SiloSettingsDefaults
    {
        public static readonly string ServiceId = new SiloSettings().ServiceId;
    }
}
