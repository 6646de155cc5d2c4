using System.CommandLine;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Optim.Cli.Hosting;
using Orleans.Optim.Client;

namespace Orleans.Optim.Cli.Commands;

/// <summary>
/// The options that choose a cluster: none starts an embedded cluster in this process; <c>--gateway</c> connects to
/// silos started separately.
/// </summary>
public sealed class ClusterOptions
{
    /// <summary>Gateway addresses of silos started separately.</summary>
    public Option<string[]> Gateways { get; } = new("--gateway")
    {
        Description = "Gateway of a silo started separately, as PORT or 127.0.0.1:PORT; repeat for several silos. Without it, an embedded cluster starts in this process.",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>Cluster id of silos started separately.</summary>
    public Option<string> ClusterId { get; } = new("--cluster-id")
    {
        Description = "Orleans cluster id of the silos given by --gateway.",
        DefaultValueFactory = _ => ClientConnection.DefaultClusterId,
    };

    /// <summary>Service id of silos started separately.</summary>
    public Option<string> ServiceId { get; } = new("--service-id")
    {
        Description = "Orleans service id of the silos given by --gateway.",
        DefaultValueFactory = _ => ClientConnection.DefaultServiceId,
    };

    /// <summary>Number of silos of the embedded cluster.</summary>
    public Option<int> Silos { get; } = new("--silos")
    {
        Description = "Number of silos of the embedded cluster (when no --gateway is given).",
        DefaultValueFactory = _ => 2,
    };

    /// <summary>Adds the options to a command.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(Gateways);
        command.Options.Add(ClusterId);
        command.Options.Add(ServiceId);
        command.Options.Add(Silos);
    }

    /// <summary>Connects to the chosen cluster, or starts the embedded one.</summary>
    /// <exception cref="ArgumentException">A gateway is not a loopback address with a valid port.</exception>
    public async Task<ClusterConnection> ConnectAsync(ParseResult parseResult, TextWriter output, string? embeddedCheckpointPath = null)
    {
        string[] gateways = parseResult.GetValue(Gateways) ?? [];
        if (gateways.Length == 0)
        {
            int silos = parseResult.GetValue(Silos);
            if (silos is < 1 or > MaxEmbeddedSilos)
            {
                throw new ArgumentException($"Invalid --silos {silos}: expected 1 to {MaxEmbeddedSilos} silos in one process.");
            }

            output.WriteLine($"Starting an embedded cluster of {silos} silo{(silos == 1 ? "" : "s")} on 127.0.0.1.");
            var embedded = await EmbeddedCluster.StartAsync(silos, checkpointPath: embeddedCheckpointPath);
            return new ClusterConnection(embedded.Client, embedded.DisposeAsync);
        }

        var ports = gateways.Select(ParseGatewayPort).ToList();
        string clusterId = parseResult.GetValue(ClusterId)!;
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(options => options.SingleLine = true);
        builder.Logging.AddConsole(options => options.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.AddFilter("Orleans", LogLevel.Error);
        builder.Logging.AddFilter("Orleans.Optim", LogLevel.Warning);

        // A failed connection is reported once as an error line; the host's own log of it would repeat it as a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleansClient(client => client.ConfigureOptimizerClient(ports, clusterId, parseResult.GetValue(ServiceId)!));
        var host = builder.Build();
        try
        {
            using var timeout = new CancellationTokenSource(ClientConnection.DefaultConnectTimeout + TimeSpan.FromSeconds(5));
            await host.StartAsync(timeout.Token);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            host.Dispose();
            throw new CommandException(
                $"Cannot connect to the cluster '{clusterId}' through 127.0.0.1 port(s) {string.Join(", ", ports)} " +
                $"within {ClientConnection.DefaultConnectTimeout.TotalSeconds:0} s: {FirstLine(e.Message)} " +
                "Check that the silos run with these --Optim:Silo:GatewayPort values and the same cluster id (--cluster-id).",
                e);
        }

        output.WriteLine($"Connected to the cluster through 127.0.0.1 port(s) {string.Join(", ", ports)}.");
        return new ClusterConnection(host.Services.GetRequiredService<IClusterClient>(), async () =>
        {
            await host.StopAsync();
            host.Dispose();
        });
    }

    /// <summary>Maximum number of silos of the embedded cluster.</summary>
    public const int MaxEmbeddedSilos = 8;

    private static string FirstLine(string text)
    {
        int end = text.IndexOf('\n');
        string line = (end < 0 ? text : text[..end]).Trim();
        return line.EndsWith('.') ? line : line + ".";
    }

    /// <summary>Parses <c>PORT</c>, <c>127.0.0.1:PORT</c>, <c>[::1]:PORT</c> or <c>localhost:PORT</c>.</summary>
    /// <exception cref="ArgumentException">The address is not loopback or the port is invalid.</exception>
    public static int ParseGatewayPort(string gateway)
    {
        string host = "127.0.0.1";
        string portText = gateway;
        int colon = gateway.LastIndexOf(':');
        if (colon >= 0)
        {
            host = gateway[..colon].Trim('[', ']');
            portText = gateway[(colon + 1)..];
        }

        bool loopback = host == "localhost" || (IPAddress.TryParse(host, out var address) && IPAddress.IsLoopback(address));
        if (!loopback)
        {
            throw new ArgumentException(
                $"Invalid --gateway '{gateway}': only loopback gateways (127.0.0.1, ::1, localhost) are supported, because silos listen on loopback only.");
        }

        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
        {
            throw new ArgumentException($"Invalid --gateway '{gateway}': expected a port from 1 to 65535, such as 30000 or 127.0.0.1:30000.");
        }

        return port;
    }
}

/// <summary>A connected cluster client and how to let it go.</summary>
public sealed class ClusterConnection(IClusterClient client, Func<ValueTask> dispose) : IAsyncDisposable
{
    /// <summary>The client.</summary>
    public IClusterClient Client { get; } = client;

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => dispose();
}
