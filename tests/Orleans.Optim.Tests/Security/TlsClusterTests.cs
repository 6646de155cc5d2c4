using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Orleans.Optim.Cli.Commands;
using Orleans.Optim.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Orleans.Optim.Tests.Security;

/// <summary>
/// Silo processes with mutual TLS and the training client connecting to them: with the cluster certificate, without
/// one, with another certificate and with another cluster id. Every client run is bounded by a time limit.
/// </summary>
public sealed class TlsClusterTests(TlsClusterFixture cluster, ITestOutputHelper output) : IClassFixture<TlsClusterFixture>, IDisposable
{
    /// <summary>Limit of a client run that fails to connect: its 15 s of retries plus starting .NET, with room for a slow machine.</summary>
    private static readonly TimeSpan FailingClientLimit = TimeSpan.FromSeconds(90);

    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-tls-client-").FullName;

    [Fact]
    public void TrainingRunsOverTls()
    {
        var result = RunClient(["--tls-certificate", cluster.CertificatePath], PasswordVariable(), TimeSpan.FromMinutes(3));

        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains(
            $"Connected to the cluster through 127.0.0.1 port(s) {cluster.GatewayPorts[0]}, {cluster.GatewayPorts[1]} with mutual TLS " +
            $"(certificate 'CN=orleans-optim-tls-test', thumbprint {cluster.Certificate.Thumbprint}).",
            result.Output);

        // Shards on both silos: the silos reached each other over TLS too.
        Assert.Contains("4 parameters in 4 shards on 2 silo(s)", result.Output);
        Assert.Contains("epoch   1/1", result.Output);
        Assert.True(File.Exists(Path.Combine(_folder, "run", "epoch-0001", "optimizer.pt")));
        foreach (var silo in cluster.Silos)
        {
            Assert.Contains($"mutual TLS with the certificate 'CN=orleans-optim-tls-test' (thumbprint {cluster.Certificate.Thumbprint})", silo.Output);
            Assert.DoesNotContain(TlsClusterFixture.Password, silo.Output);
        }
    }

    [Fact]
    public void ClientWithoutCertificateIsRejected()
    {
        var clock = Stopwatch.StartNew();
        var result = RunClient([], environment: null, FailingClientLimit);
        output.WriteLine($"failed after {clock.Elapsed.TotalSeconds:0.0} s:\n{result.Error}");

        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith(
            $"error: Cannot connect to the cluster '{cluster.ClusterId}' through 127.0.0.1 port(s) {cluster.GatewayPorts[0]}, {cluster.GatewayPorts[1]} within 15 s:",
            result.Error);
        Assert.Contains("If the silos run with TLS (Optim:Silo:Tls:CertificatePath), give their certificate with --tls-certificate.", result.Error);
        Assert.DoesNotContain("Connected to the cluster", result.Output);
    }

    [Fact]
    public void ClientWithOtherCertificateIsRejected()
    {
        using var other = TestCertificates.Create("orleans-optim-tls-test");
        string path = TestCertificates.WritePfx(other, Path.Combine(_folder, "other.pfx"), TlsClusterFixture.Password);

        var result = RunClient(["--tls-certificate", path], PasswordVariable(), FailingClientLimit);
        output.WriteLine(result.Error);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"error: Cannot connect to the cluster '{cluster.ClusterId}' through 127.0.0.1 port(s)", result.Error);
        Assert.Contains("and a certificate that --tls-certificate matches", result.Error);

        // The client rejects the gateways' certificate, and the silos reject the client's.
        Assert.Contains(
            $"Rejected the TLS certificate 'CN=orleans-optim-tls-test' (thumbprint {cluster.Certificate.Thumbprint}) of a peer: it is not the cluster certificate 'CN=orleans-optim-tls-test' (thumbprint {other.Thumbprint})",
            result.Error);
        Assert.True(
            cluster.Silos.Any(silo => silo.Output.Contains($"Rejected the TLS certificate 'CN=orleans-optim-tls-test' (thumbprint {other.Thumbprint})", StringComparison.Ordinal)),
            string.Join("\n", cluster.Silos.Select(silo => silo.Output)));
    }

    [Fact]
    public void ClientWithWrongClusterIdIsRejected()
    {
        var result = RunClient(["--tls-certificate", cluster.CertificatePath], PasswordVariable(), FailingClientLimit, clusterId: "other-cluster");
        output.WriteLine(result.Error);

        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("error: Cannot connect to the cluster 'other-cluster' through 127.0.0.1 port(s)", result.Error);
        Assert.DoesNotContain("Connected to the cluster", result.Output);
    }

    [Fact]
    public async Task PortsAcceptOnlyTls()
    {
        foreach (int port in new[] { cluster.GatewayPorts[0], cluster.SiloPorts[0] })
        {
            // With the cluster certificate, the handshake completes: the port encrypts and both sides authenticated.
            using (var tls = await ConnectTlsAsync(port, cluster.Certificate))
            {
                Assert.True(tls.IsEncrypted, $"port {port}");
                Assert.True(tls.IsMutuallyAuthenticated, $"port {port}");
                Assert.Contains(tls.SslProtocol, new[] { SslProtocols.Tls12, SslProtocols.Tls13 });
                Assert.Equal(cluster.Certificate.Thumbprint, tls.RemoteCertificate?.GetCertHashString());
            }

            // Without a client certificate, the silo ends the connection during or right after the handshake.
            Assert.True(await IsClosedWithoutClientCertificateAsync(port), $"port {port} kept a TLS connection without a client certificate");

            // The silo sends nothing back on plain bytes, because it reads them as a broken TLS record and closes the connection.
            Assert.Equal(0, await CountReplyToPlainBytesAsync(port));
        }
    }

    [Fact]
    public void SiloWithOtherCertificateIsRejected()
    {
        using var other = TestCertificates.Create("orleans-optim-intruder");
        string path = TestCertificates.WritePfx(other, Path.Combine(_folder, "intruder.pfx"), TlsClusterFixture.Password);
        int[] ports = LoopbackPorts.Free(2);

        using var intruder = cluster.StartSilo(ports[0], ports[1], path);

        // The primary silo rejects the intruder's certificate when it tries to join, and the intruder rejects the primary's.
        string rejected = $"Rejected the TLS certificate 'CN=orleans-optim-intruder' (thumbprint {other.Thumbprint}) of a peer: it is not the cluster certificate";
        Assert.True(cluster.Silos[0].WaitForOutput(rejected, TimeSpan.FromSeconds(60)), cluster.Silos[0].Output);
        Assert.True(
            intruder.WaitForOutput($"Rejected the TLS certificate 'CN=orleans-optim-tls-test' (thumbprint {cluster.Certificate.Thumbprint})", TimeSpan.FromSeconds(30)),
            intruder.Output);
        Assert.DoesNotContain("Silo started:", intruder.Output);
    }

    [Fact]
    public void SiloRejectsWrongPassword()
    {
        int[] ports = LoopbackPorts.Free(2);
        using var silo = SiloProcess.Start(
            new Dictionary<string, string>
            {
                ["SiloPort"] = $"{ports[0]}",
                ["GatewayPort"] = $"{ports[1]}",
                ["Tls:CertificatePath"] = cluster.CertificatePath,
            },
            new Dictionary<string, string> { ["Optim__Silo__Tls__CertificatePassword"] = "wrong-password-4" });

        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(60)), "The silo still ran 60 s after it was given a wrong password.");
        Assert.Equal(1, silo.ExitCode);
        Assert.StartsWith(
            $"error: Cannot open the PFX file Optim:Silo:Tls:CertificatePath '{cluster.CertificatePath}' with the password from Optim:Silo:Tls:CertificatePassword:",
            silo.Output);
        Assert.Single(silo.Output.Trim().Split('\n'));
        Assert.DoesNotContain("wrong-password-4", silo.Output);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Completes a TLS handshake with a silo port, presenting <paramref name="certificate"/>.</summary>
    private static async Task<SslStream> ConnectTlsAsync(int port, X509Certificate2 certificate)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port).WaitAsync(TimeSpan.FromSeconds(10));
        var tls = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await tls.AuthenticateAsClientAsync(
            new SslClientAuthenticationOptions
            {
                TargetHost = "127.0.0.1",
                ClientCertificates = [certificate],
                RemoteCertificateValidationCallback = (_, remote, _, _) => remote?.GetCertHashString() == certificate.Thumbprint,
            },
            timeout.Token);
        return tls;
    }

    /// <summary>
    /// Tries a TLS connection without a client certificate: with TLS 1.2 the handshake fails, and with TLS 1.3 the
    /// client finishes first and the silo closes the connection once it has checked for the missing certificate.
    /// </summary>
    private async Task<bool> IsClosedWithoutClientCertificateAsync(int port)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port).WaitAsync(TimeSpan.FromSeconds(10));
        using var tls = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await tls.AuthenticateAsClientAsync(
                new SslClientAuthenticationOptions { TargetHost = "127.0.0.1", RemoteCertificateValidationCallback = (_, _, _, _) => true },
                timeout.Token);
            int read = await tls.ReadAsync(new byte[64], timeout.Token);
            output.WriteLine($"port {port}: handshake without a client certificate completed, then the read returned {read} bytes");
            return read == 0;
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            output.WriteLine($"port {port}: {e.GetType().Name}: {e.Message}");
            return true;
        }
    }

    /// <summary>Sends bytes that are not TLS and returns how many bytes the silo sends back before it closes the connection.</summary>
    private async Task<int> CountReplyToPlainBytesAsync(int port)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port).WaitAsync(TimeSpan.FromSeconds(10));
        var stream = tcp.GetStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await stream.WriteAsync(new byte[64], timeout.Token);
        int total = 0;
        try
        {
            int read;
            var buffer = new byte[256];
            while ((read = await stream.ReadAsync(buffer, timeout.Token)) > 0)
            {
                total += read;
            }
        }
        catch (IOException e)
        {
            output.WriteLine($"port {port}: {e.Message}");
        }

        return total;
    }

    private CommandResult RunClient(string[] tlsOptions, IReadOnlyDictionary<string, string>? environment, TimeSpan limit, string? clusterId = null)
    {
        string[] arguments =
        [
            "train", "--epochs", "1", "--checkpoint-dir", "run",
            "--gateway", $"{cluster.GatewayPorts[0]}", "--gateway", $"{cluster.GatewayPorts[1]}",
            "--cluster-id", clusterId ?? cluster.ClusterId,
            .. tlsOptions,
        ];
        return CommandRunner.RunClient(arguments, _folder, limit, environment);
    }

    private static Dictionary<string, string> PasswordVariable() =>
        new() { [ClusterOptions.TlsPasswordVariable] = TlsClusterFixture.Password };
}
