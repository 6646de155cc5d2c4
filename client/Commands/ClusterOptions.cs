using System.CommandLine;
using System.Globalization;
using System.Net;
using Azure.Data.Tables;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Optim.Cli.Hosting;
using Orleans.Optim.Client;
using Orleans.Optim.Security;

namespace Orleans.Optim.Cli.Commands;

/// <summary>
/// The options that choose a cluster: none starts an embedded cluster in this process; <c>--gateway</c> connects to
/// silos started separately with localhost clustering; <c>--azure-storage</c> (or the environment variable
/// <see cref="AzureStorageVariable"/>) connects to silos that keep their membership table in Azure Storage; the
/// <c>--tls-*</c> options connect to either kind with mutual TLS.
/// </summary>
public sealed class ClusterOptions
{
    /// <summary>Environment variable read in place of <c>--azure-storage</c> when neither it nor <c>--gateway</c> is given.</summary>
    public const string AzureStorageVariable = "ORLEANS_OPTIM_AZURE_STORAGE";

    /// <summary>Environment variable with the password of <c>--tls-certificate</c> when <c>--tls-password-env</c> is not given.</summary>
    public const string TlsPasswordVariable = "ORLEANS_OPTIM_TLS_PASSWORD";

    /// <summary>Gateway addresses of silos started separately.</summary>
    public Option<string[]> Gateways { get; } = new("--gateway")
    {
        Description = "Gateway of a silo started separately, as PORT, 127.0.0.1:PORT or [::1]:PORT; repeat for several silos. Without it and without --azure-storage, an embedded cluster starts in this process.",
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

    /// <summary>Certificate file for mutual TLS with the silos.</summary>
    public Option<string> TlsCertificate { get; } = new("--tls-certificate")
    {
        Description = "PFX (PKCS#12) file with the cluster certificate and its private key, for silos started with " +
            "--Optim:Silo:Tls:CertificatePath: the client then connects with mutual TLS. The file's password is read from " +
            $"the environment variable that --tls-password-env names ({TlsPasswordVariable} by default), never from the command line.",
        HelpName = "PATH",
    };

    /// <summary>Name of the environment variable with the certificate's password.</summary>
    public Option<string> TlsPasswordEnvironment { get; } = new("--tls-password-env")
    {
        Description = $"Name of the environment variable that contains the password of --tls-certificate. Default {TlsPasswordVariable}; " +
            "when that is not set, the file is opened without a password.",
        HelpName = "NAME",
    };

    /// <summary>CA certificate whose issued gateway certificates the client accepts.</summary>
    public Option<string> TlsCaCertificate { get; } = new("--tls-ca-certificate")
    {
        Description = "CA certificate (PEM or DER file) whose issued certificates the client accepts from the gateways, " +
            "besides the --tls-certificate itself; the silos' Optim:Silo:Tls:CaCertificatePath.",
        HelpName = "PATH",
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
        command.Options.Add(TlsCertificate);
        command.Options.Add(TlsPasswordEnvironment);
        command.Options.Add(TlsCaCertificate);
    }

    /// <summary>Connects to the chosen cluster, or starts the embedded one.</summary>
    /// <exception cref="ArgumentException">
    /// A gateway is not a loopback address with a valid port, <c>--gateway</c> and <c>--azure-storage</c> are both
    /// given, the connection string is invalid, or a TLS option is given without a cluster to use it on or names an
    /// unusable certificate.
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
        var tls = LoadCertificate(parseResult);
        if (gateways.Length > 0)
        {
            return await ConnectThroughGatewaysAsync(gateways.Select(ParseGateway).ToList(), clusterId, serviceId, responseTimeout, tls, output);
        }

        string source = "--azure-storage";
        if (azureStorage is null && Environment.GetEnvironmentVariable(AzureStorageVariable) is { Length: > 0 } fromEnvironment)
        {
            azureStorage = fromEnvironment;
            source = $"the environment variable {AzureStorageVariable}";
        }

        if (azureStorage is not null)
        {
            return await ConnectThroughAzureStorageAsync(azureStorage, source, clusterId, serviceId, responseTimeout, tls, output);
        }

        if (tls is not null)
        {
            throw new ArgumentException(
                "Invalid options: --tls-certificate needs --gateway or --azure-storage, because the embedded cluster runs in " +
                "this process and its traffic stays inside it. Give the silos to connect to, or remove --tls-certificate.");
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

    /// <summary>Loads the <c>--tls-certificate</c> file, or returns <see langword="null"/> when it is not given.</summary>
    private ClusterCertificate? LoadCertificate(ParseResult parseResult)
    {
        string? path = parseResult.GetValue(TlsCertificate);
        string? passwordVariable = parseResult.GetValue(TlsPasswordEnvironment);
        string? caPath = parseResult.GetValue(TlsCaCertificate);
        if (path is null)
        {
            if (passwordVariable is not null)
            {
                throw OptionWithoutCertificate("--tls-password-env");
            }

            if (caPath is not null)
            {
                throw OptionWithoutCertificate("--tls-ca-certificate");
            }

            return null;
        }

        string variable = passwordVariable ?? TlsPasswordVariable;
        string? password = Environment.GetEnvironmentVariable(variable);
        if (passwordVariable is not null && password is null)
        {
            throw new ArgumentException(
                $"Invalid --tls-password-env {passwordVariable}: the environment variable {passwordVariable} is not set. Set it to the " +
                "password of --tls-certificate, or remove --tls-password-env for a file without a password.");
        }

        var names = new TlsSettingNames("--tls-certificate", $"the environment variable {variable}", "--tls-ca-certificate");
        var settings = new TlsSettings { CertificatePath = path, CertificatePassword = password, CaCertificatePath = caPath };
        return ClusterCertificate.Load(settings, names, CertificateUse.Client);
    }

    private static ArgumentException OptionWithoutCertificate(string option) =>
        new($"Invalid options: {option} is given without --tls-certificate. Give the cluster certificate with --tls-certificate, or remove {option}.");

    /// <summary>Connects a client to silos with localhost clustering through their gateways, with mutual TLS when <paramref name="tls"/> is given.</summary>
    /// <exception cref="CommandException">The client cannot connect within the connect timeout.</exception>
    internal static async Task<ClusterConnection> ConnectThroughGatewaysAsync(
        List<IPEndPoint> gateways, string clusterId, string serviceId, TimeSpan responseTimeout, ClusterCertificate? tls, TextWriter output)
    {
        string route = string.Join("; ", gateways.GroupBy(g => g.Address).Select(g => $"{g.Key} port(s) {string.Join(", ", g.Select(e => e.Port))}"));
        var connection = await StartClientAsync(
            client => UseTls(client.ConfigureOptimizerClient(gateways, clusterId, serviceId, responseTimeout), tls),
            clusterId,
            route,
            TimeSpan.FromSeconds(5),
            "Check that the silos run with these --Optim:Silo:GatewayPort values and the same cluster id (--cluster-id)" +
            TlsHint(tls));
        output.WriteLine($"Connected to the cluster through {route}{TlsDescription(tls)}.");
        return connection;
    }

    private static async Task<ClusterConnection> ConnectThroughAzureStorageAsync(
        string connectionString, string source, string clusterId, string serviceId, TimeSpan responseTimeout, ClusterCertificate? tls, TextWriter output)
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
            client => UseTls(client.ConfigureOptimizerClientWithAzureStorage(connectionString, clusterId, serviceId, responseTimeout), tls),
            clusterId,
            route,
            TimeSpan.FromSeconds(20),
            "Check that the storage account accepts connections (for a local Azurite: scripts/azurite.sh start) and that " +
            "the silos run with --Optim:Silo:Clustering=AzureStorage, the same connection string and the same cluster id (--cluster-id)" +
            TlsHint(tls));
        output.WriteLine($"Connected to the cluster through {route}{TlsDescription(tls)}.");
        return connection;
    }

    private static IClientBuilder UseTls(IClientBuilder client, ClusterCertificate? tls) =>
        tls is null ? client : client.UseOptimizerTls(tls);

    /// <summary>The end of a connection error's hint, about the TLS settings on both sides.</summary>
    private static string TlsHint(ClusterCertificate? tls) => tls is null
        ? ". If the silos run with TLS (Optim:Silo:Tls:CertificatePath), give their certificate with --tls-certificate."
        : ", and that they run with TLS (Optim:Silo:Tls:CertificatePath) and a certificate that --tls-certificate matches: " +
          "the same certificate, or one issued by the CA certificate both sides trust (--tls-ca-certificate).";

    private static string TlsDescription(ClusterCertificate? tls) => tls is null
        ? string.Empty
        : $" with mutual TLS (certificate '{tls.Certificate.Subject}', thumbprint {tls.Certificate.Thumbprint})";

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

    /// <summary>
    /// Parses <c>PORT</c> (on 127.0.0.1), <c>127.0.0.1:PORT</c>, <c>[::1]:PORT</c>, <c>localhost:PORT</c> (127.0.0.1),
    /// or another loopback address with a port.
    /// </summary>
    /// <exception cref="ArgumentException">The address is not loopback or the port is invalid.</exception>
    public static IPEndPoint ParseGateway(string gateway)
    {
        string host = "127.0.0.1";
        string portText = gateway;
        int colon = gateway.LastIndexOf(':');
        if (colon >= 0)
        {
            host = gateway[..colon].Trim('[', ']');
            portText = gateway[(colon + 1)..];
        }

        IPAddress? address = null;
        if (host == "localhost")
        {
            address = IPAddress.Loopback;
        }
        else if (IPAddress.TryParse(host, out var parsed))
        {
            address = parsed;
        }

        if (address is null || !IPAddress.IsLoopback(address))
        {
            throw new ArgumentException(
                $"Invalid --gateway '{gateway}': only loopback gateways (127.0.0.1, ::1, localhost) are supported, because silos " +
                "with Localhost clustering listen on loopback only. For silos on other addresses, use --azure-storage.");
        }

        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
        {
            throw new ArgumentException($"Invalid --gateway '{gateway}': expected a port from 1 to 65535, such as 30000 or 127.0.0.1:30000.");
        }

        return new IPEndPoint(address, port);
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
