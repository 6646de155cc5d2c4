using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Orleans.Optim.Hosting;
using Orleans.Optim.Security;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Security;

/// <summary>
/// Loading the cluster certificate from files made by the test, each kind of unusable file, and the rule for the
/// certificates of peers.
/// </summary>
public sealed class ClusterCertificateTests : IDisposable
{
    private const string Password = "pfx-password-1";
    private const string ServerSide = TestCertificates.ServerAuthentication;
    private const string ClientSide = TestCertificates.ClientAuthentication;

    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-certificates-").FullName;
    private readonly X509Certificate2 _cluster = TestCertificates.Create("orleans-optim-test");

    [Fact]
    public void LoadReadsPasswordProtectedPfx()
    {
        string path = TestCertificates.WritePfx(_cluster, Path.Combine(_folder, "cluster.pfx"), Password);

        var loaded = Load(path, Password);

        Assert.True(loaded.Certificate.HasPrivateKey);
        Assert.Equal(_cluster.Thumbprint, loaded.Certificate.Thumbprint);
        Assert.Null(loaded.CaCertificate);
    }

    [Fact]
    public void LoadReadsPfxWithoutPassword()
    {
        string path = TestCertificates.WritePfx(_cluster, Path.Combine(_folder, "cluster.pfx"), password: null);

        var loaded = Load(path, password: null);

        Assert.Equal(_cluster.Thumbprint, loaded.Certificate.Thumbprint);
    }

    [Fact]
    public void LoadRejectsMissingFile()
    {
        string path = Path.Combine(_folder, "missing.pfx");

        var error = Assert.Throws<ArgumentException>(() => Load(path, Password));

        Assert.StartsWith($"Invalid Optim:Silo:Tls:CertificatePath '{path}': the file {path} was not found.", error.Message);
        Assert.Contains("Give the path of a PFX (PKCS#12) file", error.Message);
    }

    [Fact]
    public void LoadRejectsWrongPassword()
    {
        string path = TestCertificates.WritePfx(_cluster, Path.Combine(_folder, "cluster.pfx"), Password);

        var error = Assert.Throws<ArgumentException>(() => Load(path, "wrong-password-2"));

        Assert.StartsWith(
            $"Cannot open the PFX file Optim:Silo:Tls:CertificatePath '{path}' with the password from Optim:Silo:Tls:CertificatePassword:",
            error.Message);
        Assert.EndsWith("Give the password that the file was exported with.", error.Message);
        Assert.DoesNotContain("wrong-password-2", error.Message);
        Assert.DoesNotContain(Password, error.Message);
    }

    [Fact]
    public void LoadRejectsMissingPassword()
    {
        string path = TestCertificates.WritePfx(_cluster, Path.Combine(_folder, "cluster.pfx"), Password);

        var error = Assert.Throws<ArgumentException>(() => Load(path, password: null));

        Assert.StartsWith(
            $"Cannot open the PFX file Optim:Silo:Tls:CertificatePath '{path}' without a password (Optim:Silo:Tls:CertificatePassword is not set):",
            error.Message);
    }

    [Fact]
    public void LoadRejectsPfxWithoutPrivateKey()
    {
        string path = TestCertificates.WritePfxWithoutKey(_cluster, Path.Combine(_folder, "public.pfx"), Password);

        var error = Assert.Throws<ArgumentException>(() => Load(path, Password));

        Assert.StartsWith($"Invalid Optim:Silo:Tls:CertificatePath '{path}': its certificate 'CN=orleans-optim-test' (thumbprint {_cluster.Thumbprint}) has no private key", error.Message);
        Assert.Contains("Export the certificate together with its private key as a PFX file.", error.Message);
    }

    [Fact]
    public void LoadRejectsPemCertificate()
    {
        string path = TestCertificates.WritePem(_cluster, Path.Combine(_folder, "cluster.pem"));

        var error = Assert.Throws<ArgumentException>(() => Load(path, Password));

        Assert.StartsWith($"Invalid Optim:Silo:Tls:CertificatePath '{path}': the file contains a certificate without its private key", error.Message);
    }

    [Fact]
    public void LoadRejectsFileOfOtherFormat()
    {
        string path = Path.Combine(_folder, "notes.txt");
        File.WriteAllText(path, "not a certificate");

        var error = Assert.Throws<ArgumentException>(() => Load(path, Password));

        Assert.StartsWith($"Invalid Optim:Silo:Tls:CertificatePath '{path}': the file is not a PFX (PKCS#12) file.", error.Message);
    }

    [Fact]
    public void LoadRejectsExpiredCertificate()
    {
        var notAfter = DateTimeOffset.UtcNow.AddDays(-1);
        using var expired = TestCertificates.Create("expired", notBefore: notAfter.AddDays(-30), notAfter: notAfter);
        string path = TestCertificates.WritePfx(expired, Path.Combine(_folder, "expired.pfx"), Password);

        var error = Assert.Throws<ArgumentException>(() => Load(path, Password));

        Assert.StartsWith($"Invalid Optim:Silo:Tls:CertificatePath '{path}': its certificate 'CN=expired'", error.Message);
        Assert.Contains($"expired on {notAfter.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC.", error.Message);
        Assert.EndsWith("Create a new certificate and give it to every silo and client of the cluster.", error.Message);
    }

    [Fact]
    public void LoadRejectsCertificateNotYetValid()
    {
        var notBefore = DateTimeOffset.UtcNow.AddDays(2);
        using var future = TestCertificates.Create("future", notBefore: notBefore, notAfter: notBefore.AddDays(30));
        string path = TestCertificates.WritePfx(future, Path.Combine(_folder, "future.pfx"), Password);

        var error = Assert.Throws<ArgumentException>(() => Load(path, Password));

        Assert.Contains($"is not valid before {notBefore.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC.", error.Message);
    }

    [Fact]
    public void LoadChecksExtendedKeyUsagePerSide()
    {
        using var clientOnly = TestCertificates.Create("client-only", usages: [TestCertificates.ClientAuthentication]);
        using var serverOnly = TestCertificates.Create("server-only", usages: [TestCertificates.ServerAuthentication]);
        using var unrestricted = TestCertificates.Create("unrestricted", usages: []);
        string clientOnlyPath = TestCertificates.WritePfx(clientOnly, Path.Combine(_folder, "client-only.pfx"), Password);
        string serverOnlyPath = TestCertificates.WritePfx(serverOnly, Path.Combine(_folder, "server-only.pfx"), Password);
        string unrestrictedPath = TestCertificates.WritePfx(unrestricted, Path.Combine(_folder, "unrestricted.pfx"), Password);

        var silo = Assert.Throws<ArgumentException>(() => Load(clientOnlyPath, Password));
        Assert.Contains("has an extended key usage without server authentication (1.3.6.1.5.5.7.3.1), and a silo needs both", silo.Message);

        var client = Assert.Throws<ArgumentException>(() => Load(serverOnlyPath, Password, use: CertificateUse.Client));
        Assert.Contains("without client authentication (1.3.6.1.5.5.7.3.2), and a client needs it", client.Message);

        Assert.Equal(clientOnly.Thumbprint, Load(clientOnlyPath, Password, use: CertificateUse.Client).Certificate.Thumbprint);
        Assert.Equal(unrestricted.Thumbprint, Load(unrestrictedPath, Password).Certificate.Thumbprint);
    }

    [Fact]
    public void LoadRejectsMissingCaFile()
    {
        string path = TestCertificates.WritePfx(_cluster, Path.Combine(_folder, "cluster.pfx"), Password);
        string caPath = Path.Combine(_folder, "missing-ca.pem");

        var error = Assert.Throws<ArgumentException>(() => Load(path, Password, caPath));

        Assert.StartsWith($"Invalid Optim:Silo:Tls:CaCertificatePath '{caPath}': the file {caPath} was not found.", error.Message);
    }

    [Fact]
    public void LoadRejectsCertificateFromOtherIssuer()
    {
        using var ca = TestCertificates.CreateCa("orleans-optim-test-ca");
        string caPath = TestCertificates.WritePem(ca, Path.Combine(_folder, "ca.pem"));
        string path = TestCertificates.WritePfx(_cluster, Path.Combine(_folder, "cluster.pfx"), Password);

        var error = Assert.Throws<ArgumentException>(() => Load(path, Password, caPath));

        Assert.Contains("was not issued by the CA certificate 'CN=orleans-optim-test-ca'", error.Message);
        Assert.Contains("remove Optim:Silo:Tls:CaCertificatePath to accept only peers with the same certificate", error.Message);
    }

    [Fact]
    public void AcceptsOnlySameCertificateWithoutCa()
    {
        var loaded = Load(TestCertificates.WritePfx(_cluster, Path.Combine(_folder, "cluster.pfx"), Password), Password);
        using var same = X509CertificateLoader.LoadCertificate(_cluster.RawData);
        using var other = TestCertificates.Create("orleans-optim-test");

        Assert.True(loaded.Accepts(same, presentedChain: null, ClientSide, out string sameReason));
        Assert.Equal(string.Empty, sameReason);

        // The same subject is not enough: the rule compares the whole certificate.
        Assert.False(loaded.Accepts(other, presentedChain: null, ClientSide, out string otherReason));
        Assert.Equal($"it is not the cluster certificate 'CN=orleans-optim-test' (thumbprint {_cluster.Thumbprint}), and no CA certificate is configured.", otherReason);
    }

    [Fact]
    public void AcceptsCertificatesOfConfiguredCa()
    {
        using var ca = TestCertificates.CreateCa("orleans-optim-test-ca");
        using var otherCa = TestCertificates.CreateCa("other-ca");
        using var silo = TestCertificates.Create("silo-1", ca);
        using var peer = TestCertificates.Create("silo-2", ca);
        using var clientOnly = TestCertificates.Create("client-1", ca, usages: [TestCertificates.ClientAuthentication]);
        using var stranger = TestCertificates.Create("silo-3", otherCa);
        var loaded = Load(
            TestCertificates.WritePfx(silo, Path.Combine(_folder, "silo.pfx"), Password),
            Password,
            TestCertificates.WritePem(ca, Path.Combine(_folder, "ca.pem")));

        Assert.Equal(ca.Thumbprint, loaded.CaCertificate?.Thumbprint);
        Assert.True(loaded.Accepts(peer, presentedChain: null, ServerSide, out _));
        Assert.True(loaded.Accepts(peer, presentedChain: null, ClientSide, out _));

        // A client certificate may connect to a gateway, but a server certificate must allow server authentication.
        Assert.True(loaded.Accepts(clientOnly, presentedChain: null, ClientSide, out _));
        Assert.False(loaded.Accepts(clientOnly, presentedChain: null, ServerSide, out string usageReason));
        Assert.Contains("does not chain to the CA certificate 'CN=orleans-optim-test-ca'", usageReason);

        Assert.False(loaded.Accepts(stranger, presentedChain: null, ClientSide, out string strangerReason));
        Assert.StartsWith("it is not the cluster certificate 'CN=silo-1'", strangerReason);
    }

    [Fact]
    public void RejectsExpiredPeerCertificate()
    {
        using var ca = TestCertificates.CreateCa("orleans-optim-test-ca");
        using var silo = TestCertificates.Create("silo-1", ca);
        var notAfter = DateTimeOffset.UtcNow.AddMinutes(-10);
        using var expired = TestCertificates.Create("silo-2", ca, notBefore: DateTimeOffset.UtcNow.AddMinutes(-50), notAfter: notAfter);
        var loaded = Load(
            TestCertificates.WritePfx(silo, Path.Combine(_folder, "silo.pfx"), Password),
            Password,
            TestCertificates.WritePem(ca, Path.Combine(_folder, "ca.pem")));

        Assert.False(loaded.Accepts(expired, presentedChain: null, ClientSide, out string reason));
        Assert.Equal($"it expired on {notAfter.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC.", reason);
    }

    [Fact]
    public void ServerAndClientOptionsRequireCertificates()
    {
        var loaded = Load(TestCertificates.WritePfx(_cluster, Path.Combine(_folder, "cluster.pfx"), Password), Password);

        foreach (var options in new[] { loaded.CreateServerOptions(null), loaded.CreateClientOptions(null) })
        {
            Assert.Same(loaded.Certificate, options.LocalCertificate);
            Assert.Equal(Orleans.Connections.Security.RemoteCertificateMode.RequireCertificate, options.RemoteCertificateMode);
            Assert.Equal(Orleans.Connections.Security.RemoteCertificateMode.RequireCertificate, options.ClientCertificateMode);
            Assert.NotNull(options.RemoteCertificateValidation);
        }
    }

    [Fact]
    public void ValidationLogsRepeatedRejectionOnce()
    {
        var loaded = Load(TestCertificates.WritePfx(_cluster, Path.Combine(_folder, "cluster.pfx"), Password), Password);
        var logs = new LogLines();
        using var loggerFactory = LoggerFactory.Create(logging => logging.AddProvider(logs));
        var validate = loaded.CreateServerOptions(loggerFactory).RemoteCertificateValidation!;
        using var same = X509CertificateLoader.LoadCertificate(_cluster.RawData);
        using var other = TestCertificates.Create("other-client");

        // The platform reports a self-signed certificate as a chain error; the cluster's rule decides instead.
        Assert.True(validate(same, null, SslPolicyErrors.RemoteCertificateChainErrors));
        for (int i = 0; i < 5; i++)
        {
            Assert.False(validate(other, null, SslPolicyErrors.RemoteCertificateChainErrors));
        }

        var line = Assert.Single(logs.Lines);
        Assert.Equal(
            $"Warning Rejected the TLS certificate 'CN=other-client' (thumbprint {other.Thumbprint}) of a peer: it is not the cluster " +
            $"certificate 'CN=orleans-optim-test' (thumbprint {_cluster.Thumbprint}), and no CA certificate is configured.",
            line);
    }

    public void Dispose()
    {
        _cluster.Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    private static ClusterCertificate Load(string path, string? password, string? caPath = null, CertificateUse use = CertificateUse.Silo) =>
        ClusterCertificate.Load(
            new TlsSettings { CertificatePath = path, CertificatePassword = password, CaCertificatePath = caPath },
            SiloSettings.TlsNames,
            use);

    /// <summary>Keeps every log line as "Level Message".</summary>
    private sealed class LogLines : ILoggerProvider, ILogger
    {
        public List<string> Lines { get; } = [];

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Lines)
            {
                Lines.Add($"{logLevel} {formatter(state, exception)}");
            }
        }

        public void Dispose()
        {
        }
    }
}
