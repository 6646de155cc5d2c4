using System.CommandLine;
using System.Globalization;
using System.Net;
using Azure.Data.Tables;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Optim.Cli.Hosting;
using Orleans.Optim.Client;

namespace Orleans.Optim.Cli.Commands;

/// <summary>
/// The options that choose a cluster: none starts an embedded cluster in this process; <c>--gateway</c> connects to
/// silos started separately with localhost clustering; <c>--azure-storage</c> (or the environment variable
/// <see cref="AzureStorageVariable"/>) connects to silos that keep their membership table in Azure Storage.
/// </summary>
public sealed class ClusterOptions
{
    /// <summary>Environment variable read in place of <c>--azure-storage</c> when neither it nor <c>--gateway</c> is given.</summary>
    public const string AzureStorageVariable = "ORLEANS_OPTIM_AZURE_STORAGE";

    /// <summary>Gateway addresses of silos started separately.</summary>
    public Option<string[]> Gateways { get; } = new("--gateway")
    {
        Description = "Gateway of a silo started separately, as PORT or 127.0.0.1:PORT; repeat for several silos. Without it and without --azure-storage, an embedded cluster starts in this process.",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>Connection string of the storage account whose membership table lists the silos.</summary>
    public Option<string> AzureStorage { get; } = new("--azure-storage")
    {
        Description = "Connection string of the Azure Storage account (or Azurite) of silos started with " +
            "--Optim:Silo:Clustering=AzureStorage; the client finds their gateways in its membership table. " +
            $"Without it and without --gateway, the environment variable {AzureStorageVariable} is used when set. " +
            "Cannot be combined with --gateway.",
        HelpName = "CONNECTION_STRING",
    };

    /// <summary>Cluster id of silos started separately.</summary>
    public Option<string> ClusterId { get; } = new("--cluster-id")
    {
        Description = "Orleans cluster id of the silos given by --gateway or --azure-storage.",
        DefaultValueFactory = _ => ClientConnection.DefaultClusterId,
    };

    /// <summary>Service id of silos started separately.</summary>
    public Option<string> ServiceId { get; } = new("--service-id")
    {
        Description = "Orleans service id of the silos given by --gateway or --azure-storage.",
        DefaultValueFactory = _ => ClientConnection.DefaultServiceId,
    };

    /// <summary>Time the client waits for a response from the cluster.</summary>
    public Option<int> ResponseTimeout { get; } = new("--response-timeout")
    {
        Description = "Seconds the client waits for a response from the cluster, such as a step that waits for slow workers or a call to a silo that died.",
        DefaultValueFactory = _ => 120,
    };

    /// <summary>Number of silos of the embedded cluster.</summary>
    public Option<int> Silos { get; } = new("--silos")
    {
        Description = "Number of silos of the embedded cluster (when neither --gateway nor --azure-storage is given).",
        DefaultValueFactory = _ => 2,
    };

    /// <summary>Adds the options to a command.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(Gateways);
        command.Options.Add(AzureStorage);
        command.Options.Add(ClusterId);
        command.Options.Add(ServiceId);
        command.Options.Add(Silos);
        command.Options.Add(ResponseTimeout);
    }

    /// <summary>Connects to the chosen cluster, or starts the embedded one.</summary>
    /// <exception cref="ArgumentException">
    /// A gateway is not a loopback address with a valid port, <c>--gateway</c> and <c>--azure-storage</c> are both
    /// given, or the connection string is invalid.
    /// </exception>
    /// <exception cref="CommandException">The client cannot connect to the cluster within the connect timeout.</exception>
    public async Task<ClusterConnection> ConnectAsync(ParseResult parseResult, TextWriter output, string? embeddedCheckpointPath = null)
    {
        string[] gateways = parseResult.GetValue(Gateways) ?? [];
        string? azureStorage = parseResult.GetValue(AzureStorage);
        if (gateways.Length > 0 && azureStorage is not null)
        {
            throw new ArgumentException(
                "Invalid options: --gateway and --azure-storage both choose the cluster's silos. Give --gateway for silos with " +
                "localhost clustering, or --azure-storage for silos with AzureStorage clustering, not both.");
        }

        string clusterId = parseResult.GetValue(ClusterId)!;
        string serviceId = parseResult.GetValue(ServiceId)!;
        int responseSeconds = parseResult.GetValue(ResponseTimeout);
        if (responseSeconds is < 1 or > 86_400)
        {
            throw new ArgumentException($"Invalid --response-timeout {responseSeconds}: expected 1 to 86400 seconds. Pass a whole number of seconds, such as --response-timeout 120.");
        }

        var responseTimeout = TimeSpan.FromSeconds(responseSeconds);
        if (gateways.Length > 0)
        {
            return await ConnectThroughGatewaysAsync(gateways.Select(ParseGatewayPort).ToList(), clusterId, serviceId, responseTimeout, output);
        }

        string source = "--azure-storage";
        if (azureStorage is null && Environment.GetEnvironmentVariable(AzureStorageVariable) is { Length: > 0 } fromEnvironment)
        {
            azureStorage = fromEnvironment;
            source = $"the environment variable {AzureStorageVariable}";
        }

        if (azureStorage is not null)
        {
            return await ConnectThroughAzureStorageAsync(azureStorage, source, clusterId, serviceId, responseTimeout, output);
        }

        int silos = parseResult.GetValue(Silos);
        if (silos is < 1 or > MaxEmbeddedSilos)
        {
            throw new ArgumentException($"Invalid --silos {silos}: expected 1 to {MaxEmbeddedSilos} silos in one process.");
        }

        output.WriteLine($"Starting an embedded cluster of {silos} silo{(silos == 1 ? "" : "s")} on 127.0.0.1.");
        var embedded = await EmbeddedCluster.StartAsync(silos, checkpointPath: embeddedCheckpointPath);
        return new ClusterConnection(embedded.Client, embedded.DisposeAsync);
    }

    /// <summary>Connects a client to silos with localhost clustering through their gateway ports on 127.0.0.1.</summary>
    /// <exception cref="CommandException">The client cannot connect within the connect timeout.</exception>
    internal static async Task<ClusterConnection> ConnectThroughGatewaysAsync(List<int> ports, string clusterId, string serviceId, TimeSpan responseTimeout, TextWriter output)
    {
        string route = $"127.0.0.1 port(s) {string.Join(", ", ports)}";
        var connection = await StartClientAsync(
            client => client.ConfigureOptimizerClient(ports, clusterId, serviceId, responseTimeout),
            clusterId,
            route,
            TimeSpan.FromSeconds(5),
            "Check that the silos run with these --Optim:Silo:GatewayPort values and the same cluster id (--cluster-id).");
        output.WriteLine($"Connected to the cluster through {route}.");
        return connection;
    }

    private static async Task<ClusterConnection> ConnectThroughAzureStorageAsync(
        string connectionString, string source, string clusterId, string serviceId, TimeSpan responseTimeout, TextWriter output)
    {
        Uri tableEndpoint;
        try
        {
            tableEndpoint = new TableServiceClient(connectionString).Uri;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
        {
            // The message leaves out the string itself, because it contains the account key.
            throw new ArgumentException(
                $"Invalid Azure Storage connection string in {source}: {e.Message} Expected the connection string the silos " +
                "use (Optim:Silo:AzureStorageConnectionString), such as the one `scripts/azurite.sh connection-string` prints.",
                e);
        }

        string route = $"the Azure Table membership at {tableEndpoint}";
        // One connection attempt reads the membership table with the table client's retries (about 2 s when the
        // storage refuses connections), so the last attempt may start just before the connect timeout ends.
        var connection = await StartClientAsync(
            client => client.ConfigureOptimizerClientWithAzureStorage(connectionString, clusterId, serviceId, responseTimeout),
            clusterId,
            route,
            TimeSpan.FromSeconds(20),
            "Check that the storage account accepts connections (for a local Azurite: scripts/azurite.sh start) and that " +
            "the silos run with --Optim:Silo:Clustering=AzureStorage, the same connection string and the same cluster id (--cluster-id).");
        output.WriteLine($"Connected to the cluster through {route}.");
        return connection;
    }

    /// <summary>
    /// Starts a client host, which retries its connection for <see cref="ClientConnection.DefaultConnectTimeout"/>, and
    /// gives up <paramref name="margin"/> later in case an attempt hangs.
    /// </summary>
    private static async Task<ClusterConnection> StartClientAsync(
        Action<IClientBuilder> configure, string clusterId, string route, TimeSpan margin, string hint)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(options => options.SingleLine = true);
        builder.Logging.AddConsole(options => options.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.AddFilter("Orleans", LogLevel.Error);
        builder.Logging.AddFilter("Orleans.Optim", LogLevel.Warning);

        // A failed connection is reported once as an error line; the host's own log of it would repeat it as a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);

        // So would the Azure Table membership provider's, until the client has connected; its later errors are logged.
        bool connected = false;
        builder.Logging.AddFilter("Orleans.AzureUtils", level => connected && level >= LogLevel.Error);
        builder.Logging.AddFilter("Orleans.Clustering.AzureStorage", level => connected && level >= LogLevel.Error);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleansClient(configure);
        var host = builder.Build();
        var limit = ClientConnection.DefaultConnectTimeout + margin;
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await host.StartAsync(timeout.Token);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            host.Dispose();
            string cause = e is OperationCanceledException && timeout.IsCancellationRequested
                ? $"the last attempt timed out {limit.TotalSeconds:0} s after the first one started."
                : FirstLine(Cause(e).Message);
            throw new CommandException(
                $"Cannot connect to the cluster '{clusterId}' through {route} " +
                $"within {ClientConnection.DefaultConnectTimeout.TotalSeconds:0} s: {cause} {hint}",
                e);
        }

        connected = true;
        return new ClusterConnection(host.Services.GetRequiredService<IClusterClient>(), async () =>
        {
            await host.StopAsync();
            host.Dispose();
        });
    }

    /// <summary>Skips the wrappers that only repeat their inner exceptions, such as the Azure SDK's retry summary.</summary>
    private static Exception Cause(Exception exception)
    {
        var cause = exception;
        while (cause is AggregateException && cause.InnerException is not null)
        {
            cause = cause.InnerException;
        }

        return cause;
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
