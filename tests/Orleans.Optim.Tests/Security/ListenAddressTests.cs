using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Optim.Hosting;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Security;

/// <summary>
/// Where a silo listens: loopback by default, another address only with AzureStorage clustering, and every address
/// only when asked. Nothing here binds or connects to an address outside loopback: the non-loopback values are
/// checked by validation alone, and the wildcard listen endpoint is only read from the configured options.
/// </summary>
public sealed class ListenAddressTests : IDisposable
{
    /// <summary>An address of TEST-NET-1 (RFC 5737), reserved for documentation, used only as a rejected value.</summary>
    private const string DocumentationAddress = "192.0.2.1";

    /// <summary>Azurite's development account on a loopback port that is never contacted, because no host starts.</summary>
    private const string UnusedStorage =
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
        "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;TableEndpoint=http://127.0.0.1:1/devstoreaccount1;";

    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-listen-").FullName;

    [Fact]
    public void DefaultIsLoopback()
    {
        var settings = new SiloSettings();

        settings.Validate();

        Assert.Equal(IPAddress.Loopback, settings.ParseListenAddress());
        Assert.False(settings.ListenOnAnyAddress);
        Assert.False(settings.Tls.IsEnabled);
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData("silo-1.example")]
    [InlineData("127.0.0.1:11111")]
    [InlineData("")]
    public void ValidateRejectsValueThatIsNoAddress(string value)
    {
        var settings = new SiloSettings { ListenAddress = value };

        var error = Assert.Throws<ArgumentException>(settings.Validate);

        Assert.Equal(
            $"Invalid Optim:Silo:ListenAddress '{value}': expected an IP address such as 127.0.0.1 or ::1, not a host name.",
            error.Message);
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("::")]
    public void ValidateRejectsUnspecifiedAddress(string value)
    {
        var settings = new SiloSettings { ListenAddress = value, Clustering = SiloClustering.AzureStorage, AzureStorageConnectionString = UnusedStorage };

        var error = Assert.Throws<ArgumentException>(settings.Validate);

        Assert.StartsWith($"Invalid Optim:Silo:ListenAddress '{value}': other silos and clients connect to this address", error.Message);
        Assert.Contains("set Optim:Silo:ListenOnAnyAddress=true", error.Message);
    }

    [Fact]
    public void LocalhostClusteringRejectsOtherAddress()
    {
        var settings = new SiloSettings { ListenAddress = DocumentationAddress };

        var error = Assert.Throws<ArgumentException>(settings.Validate);

        Assert.Equal(
            $"Invalid Optim:Silo:ListenAddress '{DocumentationAddress}': Localhost clustering listens on a loopback address only, " +
            "such as 127.0.0.1 or ::1. Set Optim:Silo:Clustering=AzureStorage to listen on another address, or give a loopback address.",
            error.Message);
    }

    [Fact]
    public void LocalhostClusteringRejectsAnyAddress()
    {
        var settings = new SiloSettings { ListenOnAnyAddress = true };

        var error = Assert.Throws<ArgumentException>(settings.Validate);

        Assert.StartsWith("Invalid Optim:Silo:ListenOnAnyAddress true: Localhost clustering listens on a loopback address only.", error.Message);
    }

    [Fact]
    public void ValidateRejectsTlsSettingsWithoutCertificate()
    {
        var withCa = new SiloSettings();
        withCa.Tls.CaCertificatePath = "ca.pem";
        var withPassword = new SiloSettings();
        withPassword.Tls.CertificatePassword = "secret-value-3";

        var caError = Assert.Throws<ArgumentException>(withCa.Validate);
        var passwordError = Assert.Throws<ArgumentException>(withPassword.Validate);

        Assert.StartsWith("Missing Optim:Silo:Tls:CertificatePath: Optim:Silo:Tls:CaCertificatePath is set", caError.Message);
        Assert.StartsWith("Missing Optim:Silo:Tls:CertificatePath: Optim:Silo:Tls:CertificatePassword is set", passwordError.Message);
        Assert.DoesNotContain("secret-value-3", passwordError.Message);
    }

    [Fact]
    public void LocalhostClusteringUsesConfiguredLoopbackAddress()
    {
        var settings = new SiloSettings { ListenAddress = "::1", SiloPort = 11121, GatewayPort = 30021, PrimarySiloPort = 11120 };

        using var host = BuildSilo(settings);

        var endpoints = host.Services.GetRequiredService<IOptions<EndpointOptions>>().Value;
        Assert.Equal(IPAddress.IPv6Loopback, endpoints.AdvertisedIPAddress);
        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 11121), ListeningSiloEndpoint(endpoints));
        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 30021), ListeningGatewayEndpoint(endpoints));
        var membership = host.Services.GetRequiredService<IOptions<DevelopmentClusterMembershipOptions>>().Value;
        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 11120), membership.PrimarySiloEndpoint);
    }

    [Theory]
    [InlineData("127.0.0.1", false, "127.0.0.1")]
    [InlineData("127.0.0.1", true, "0.0.0.0")]
    [InlineData("::1", true, "::")]
    public void AzureStorageListensOnAnyAddressOnlyWhenSet(string address, bool anyAddress, string listening)
    {
        var settings = new SiloSettings
        {
            Clustering = SiloClustering.AzureStorage,
            AzureStorageConnectionString = UnusedStorage,
            ListenAddress = address,
            ListenOnAnyAddress = anyAddress,
            SiloPort = 11131,
            GatewayPort = 30031,
        };

        using var host = BuildSilo(settings);

        var endpoints = host.Services.GetRequiredService<IOptions<EndpointOptions>>().Value;
        Assert.Equal(IPAddress.Parse(address), endpoints.AdvertisedIPAddress);
        Assert.Equal(new IPEndPoint(IPAddress.Parse(listening), 11131), ListeningSiloEndpoint(endpoints));
        Assert.Equal(new IPEndPoint(IPAddress.Parse(listening), 30031), ListeningGatewayEndpoint(endpoints));
    }

    [Fact]
    public void SiloProcessRejectsOtherAddress()
    {
        using var silo = SiloProcess.Start(new Dictionary<string, string> { ["ListenAddress"] = DocumentationAddress });

        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(60)), "The silo still ran 60 s after it was given a non-loopback address.");
        Assert.Equal(1, silo.ExitCode);
        Assert.StartsWith($"error: Invalid Optim:Silo:ListenAddress '{DocumentationAddress}': Localhost clustering listens on a loopback address only", silo.Output);
        Assert.Single(silo.Output.Trim().Split('\n'));
    }

    [Fact]
    public void TrainingRunsOnIPv6Loopback()
    {
        int[] ports = LoopbackPorts.Free(2);
        string clusterId = "test-" + Guid.NewGuid().ToString("N")[..8];
        using var silo = SiloProcess.Start(new Dictionary<string, string>
        {
            ["ListenAddress"] = "::1",
            ["SiloPort"] = $"{ports[0]}",
            ["GatewayPort"] = $"{ports[1]}",
            ["ClusterId"] = clusterId,
        });
        Assert.True(silo.WaitForOutput("Silo started:", TimeSpan.FromSeconds(60)), silo.Output);

        var result = CommandRunner.RunClient(
            ["train", "--epochs", "1", "--gateway", $"[::1]:{ports[1]}", "--cluster-id", clusterId, "--checkpoint-dir", "run"],
            _folder);

        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains($"Connected to the cluster through ::1 port(s) {ports[1]}.", result.Output);
        Assert.Contains("epoch   1/1", result.Output);
        Assert.Contains($"on ::1; TLS off", silo.Output);

        // The gateway listens on ::1 only, so 127.0.0.1 refuses the connection.
        using var ipv4 = new TcpClient();
        var refused = Assert.Throws<SocketException>(() => ipv4.Connect(IPAddress.Loopback, ports[1]));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Where Orleans listens for silos: the listening endpoint, or else the advertised address.</summary>
    private static IPEndPoint ListeningSiloEndpoint(EndpointOptions endpoints) =>
        endpoints.SiloListeningEndpoint ?? new IPEndPoint(endpoints.AdvertisedIPAddress, endpoints.SiloPort);

    /// <summary>Where Orleans listens for clients: the listening endpoint, or else the advertised address.</summary>
    private static IPEndPoint ListeningGatewayEndpoint(EndpointOptions endpoints) =>
        endpoints.GatewayListeningEndpoint ?? new IPEndPoint(endpoints.AdvertisedIPAddress, endpoints.GatewayPort);

    /// <summary>Builds, without starting, a silo host configured from <paramref name="settings"/>; nothing listens.</summary>
    private static IHost BuildSilo(SiloSettings settings)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleans(silo => silo.ConfigureOptimizerSilo(settings));
        return builder.Build();
    }
}
