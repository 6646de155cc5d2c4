using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Connections.Security;

namespace Orleans.Optim.Security;

/// <summary>
/// The certificate that a silo or client presents in mutual TLS, and the rule for the certificates it accepts from
/// its peers.
/// </summary>
/// <remarks>
/// A peer's certificate is accepted when it is within its validity period and is byte for byte this certificate,
/// which the whole cluster then shares. When a CA certificate is configured, a certificate is also accepted if it
/// chains to that CA and allows the peer's side of the connection (server or client authentication). Host names
/// are not checked, because the rule identifies the cluster, not a host. Revocation is not checked either, so
/// shutting a certificate out means replacing the cluster certificate or the CA on every silo and client.
/// </remarks>
public sealed partial class ClusterCertificate
{
    private const string ServerAuthenticationOid = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuthenticationOid = "1.3.6.1.5.5.7.3.2";

    /// <summary>Number of distinct rejected certificates whose last log time is kept, so a flood cannot grow it.</summary>
    private const int MaxTrackedRejections = 1024;

    private static readonly TimeSpan RejectionLogInterval = TimeSpan.FromMinutes(1);

    private readonly Dictionary<string, (DateTime LoggedAt, int Suppressed)> _rejections = [];

    private ClusterCertificate(X509Certificate2 certificate, X509Certificate2? caCertificate)
    {
        Certificate = certificate;
        CaCertificate = caCertificate;
    }

    /// <summary>The certificate with its private key, presented to every peer.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The CA whose issued certificates are accepted besides <see cref="Certificate"/>, if one is configured.</summary>
    public X509Certificate2? CaCertificate { get; }

    /// <summary>Loads and checks the certificate files of <paramref name="settings"/>.</summary>
    /// <param name="settings">The files and password; <see cref="TlsSettings.IsEnabled"/> must be true.</param>
    /// <param name="names">The settings' names, for error messages.</param>
    /// <param name="use">The side that presents the certificate, which decides the extended key usage it needs.</param>
    /// <exception cref="ArgumentException">
    /// A file is missing or unreadable, the password does not open the PFX file, the certificate has no private key,
    /// is expired or not yet valid, lacks a needed extended key usage, or was not issued by the configured CA. The
    /// message names the setting and never contains the password.
    /// </exception>
    public static ClusterCertificate Load(TlsSettings settings, TlsSettingNames names, CertificateUse use)
    {
        if (!settings.IsEnabled)
        {
            throw new ArgumentException($"Missing {names.CertificatePath}: give the path of a PFX (PKCS#12) file with the cluster certificate and its private key.");
        }

        string path = settings.CertificatePath!;
        var certificate = LoadPfx(path, settings.CertificatePassword, names);
        string described = $"Invalid {names.CertificatePath} '{path}': its certificate {Describe(certificate)}";
        if (!certificate.HasPrivateKey)
        {
            throw new ArgumentException(
                $"{described} has no private key, which TLS needs to prove that this {Side(use)} owns the certificate. " +
                "Export the certificate together with its private key as a PFX file.");
        }

        CheckValidityPeriod(certificate, described);
        CheckKeyUsage(certificate, use, described);

        X509Certificate2? caCertificate = null;
        if (!string.IsNullOrWhiteSpace(settings.CaCertificatePath))
        {
            caCertificate = LoadCaCertificate(settings.CaCertificatePath, names);
            if (!ChainsTo(certificate, caCertificate, extraCertificates: null, requiredUsage: null, out string status))
            {
                throw new ArgumentException(
                    $"{described} was not issued by the CA certificate {Describe(caCertificate)} of {names.CaCertificatePath} ({status}), " +
                    "so peers that trust that CA would reject it. Give a certificate that this CA issued, or remove " +
                    $"{names.CaCertificatePath} to accept only peers with the same certificate.");
            }
        }

        return new ClusterCertificate(certificate, caCertificate);
    }

    /// <summary>
    /// Creates the TLS options of the accepting side of a connection (a silo's silo and gateway ports): it presents
    /// <see cref="Certificate"/>, requires a client certificate and accepts it by the cluster's rule.
    /// </summary>
    /// <param name="loggerFactory">Logs each rejected certificate, at most once a minute per certificate.</param>
    public TlsOptions CreateServerOptions(ILoggerFactory? loggerFactory) => CreateOptions(loggerFactory, ClientAuthenticationOid);

    /// <summary>
    /// Creates the TLS options of the connecting side of a connection (a client to a gateway, a silo to another
    /// silo): it presents <see cref="Certificate"/> and accepts the server's certificate by the cluster's rule.
    /// </summary>
    /// <param name="loggerFactory">Logs each rejected certificate, at most once a minute per certificate.</param>
    public TlsOptions CreateClientOptions(ILoggerFactory? loggerFactory) => CreateOptions(loggerFactory, ServerAuthenticationOid);

    /// <summary>Checks a peer's certificate against the cluster's rule (see the class remarks).</summary>
    /// <param name="remote">The peer's certificate.</param>
    /// <param name="presentedChain">The chain TLS built from what the peer sent; its intermediates may complete a CA chain.</param>
    /// <param name="remoteUsage">OID of the extended key usage the peer's side needs, checked for CA-issued certificates.</param>
    /// <param name="reason">Why the certificate was rejected; empty when it was accepted.</param>
    internal bool Accepts(X509Certificate2 remote, X509Chain? presentedChain, string remoteUsage, out string reason)
    {
        var now = DateTime.Now;
        if (remote.NotAfter < now)
        {
            reason = $"it expired on {Utc(remote.NotAfter)}.";
            return false;
        }

        if (remote.NotBefore > now)
        {
            reason = $"it is not valid before {Utc(remote.NotBefore)}.";
            return false;
        }

        if (remote.RawDataMemory.Span.SequenceEqual(Certificate.RawDataMemory.Span))
        {
            reason = string.Empty;
            return true;
        }

        if (CaCertificate is null)
        {
            reason = $"it is not the cluster certificate {Describe(Certificate)}, and no CA certificate is configured.";
            return false;
        }

        var intermediates = presentedChain?.ChainElements.Select(element => element.Certificate).Skip(1).ToList();
        if (ChainsTo(remote, CaCertificate, intermediates, remoteUsage, out string status))
        {
            reason = string.Empty;
            return true;
        }

        reason = $"it is not the cluster certificate {Describe(Certificate)} and does not chain to the CA certificate {Describe(CaCertificate)} ({status}).";
        return false;
    }

    private TlsOptions CreateOptions(ILoggerFactory? loggerFactory, string remoteUsage)
    {
        var logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<ClusterCertificate>();
        return new TlsOptions
        {
            LocalCertificate = Certificate,

            // Both sides present a certificate, and each rejects a peer that presents none.
            ClientCertificateMode = RemoteCertificateMode.RequireCertificate,
            RemoteCertificateMode = RemoteCertificateMode.RequireCertificate,

            // The rule replaces the platform's checks, whose policy errors are expected here: a self-signed or
            // private-CA certificate is not in the system's trust store, and silos have no host names to match.
            RemoteCertificateValidation = (remote, chain, _) =>
            {
                if (Accepts(remote, chain, remoteUsage, out string reason))
                {
                    return true;
                }

                LogRejection(logger, remote, reason);
                return false;
            },
        };
    }

    /// <summary>Logs a rejected certificate, or counts it when the same one was logged less than a minute ago.</summary>
    private void LogRejection(ILogger logger, X509Certificate2 remote, string reason)
    {
        // A client retries its connection every half second, which would repeat the same line many times.
        string thumbprint = remote.Thumbprint;
        var now = DateTime.UtcNow;
        int suppressed;
        lock (_rejections)
        {
            if (_rejections.TryGetValue(thumbprint, out var last) && now - last.LoggedAt < RejectionLogInterval)
            {
                _rejections[thumbprint] = (last.LoggedAt, last.Suppressed + 1);
                return;
            }

            if (_rejections.Count >= MaxTrackedRejections)
            {
                _rejections.Clear();
            }

            suppressed = last.Suppressed;
            _rejections[thumbprint] = (now, 0);
        }

        if (suppressed == 0)
        {
            LogRemoteCertificateRejected(logger, remote.Subject, thumbprint, reason);
        }
        else
        {
            LogRemoteCertificateRejectedAgain(logger, remote.Subject, thumbprint, reason, suppressed);
        }
    }

    private static X509Certificate2 LoadPfx(string path, string? password, TlsSettingNames names)
    {
        string fullPath = CheckFileExists(path, names.CertificatePath, "a PFX (PKCS#12) file with the cluster certificate and its private key");
        var contentType = ContentType(fullPath);
        if (contentType == X509ContentType.Cert)
        {
            throw new ArgumentException(
                $"Invalid {names.CertificatePath} '{path}': the file contains a certificate without its private key (such as a .cer " +
                "or .pem file). Export the certificate together with its private key as a PFX (PKCS#12) file.");
        }

        if (contentType != X509ContentType.Pkcs12)
        {
            throw new ArgumentException(
                $"Invalid {names.CertificatePath} '{path}': the file is not a PFX (PKCS#12) file. Export the certificate " +
                "together with its private key as a PFX file.");
        }

        try
        {
            return X509CertificateLoader.LoadPkcs12FromFile(fullPath, password);
        }
        catch (CryptographicException e)
        {
            // The message names where the password came from, never the password itself.
            string with = string.IsNullOrEmpty(password)
                ? $"without a password ({names.CertificatePassword} is not set)"
                : $"with the password from {names.CertificatePassword}";
            throw new ArgumentException(
                $"Cannot open the PFX file {names.CertificatePath} '{path}' {with}: {e.Message} Give the password that the " +
                "file was exported with.",
                e);
        }
    }

    private static X509Certificate2 LoadCaCertificate(string path, TlsSettingNames names)
    {
        string fullPath = CheckFileExists(path, names.CaCertificatePath, "a CA certificate as a PEM or DER file");
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadCertificateFromFile(fullPath);
        }
        catch (CryptographicException e)
        {
            throw new ArgumentException(
                $"Invalid {names.CaCertificatePath} '{path}': {e.Message} Expected a CA certificate as a PEM or DER file.", e);
        }

        CheckValidityPeriod(certificate, $"Invalid {names.CaCertificatePath} '{path}': its certificate {Describe(certificate)}");
        return certificate;
    }

    private static string CheckFileExists(string path, string name, string expected)
    {
        string fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath))
        {
            throw new ArgumentException($"Invalid {name} '{path}': the file {fullPath} was not found. Give the path of {expected}.");
        }

        return fullPath;
    }

    private static X509ContentType ContentType(string fullPath)
    {
        try
        {
            return X509Certificate2.GetCertContentType(fullPath);
        }
        catch (CryptographicException)
        {
            return X509ContentType.Unknown;
        }
    }

    private static void CheckValidityPeriod(X509Certificate2 certificate, string described)
    {
        var now = DateTime.Now;
        if (certificate.NotAfter < now)
        {
            throw new ArgumentException(
                $"{described} expired on {Utc(certificate.NotAfter)}. Create a new certificate and give it to every silo and client of the cluster.");
        }

        if (certificate.NotBefore > now)
        {
            throw new ArgumentException(
                $"{described} is not valid before {Utc(certificate.NotBefore)}. Check this machine's clock, or create a certificate that is valid now.");
        }
    }

    /// <summary>
    /// Checks that an extended key usage extension, when the certificate has one, allows every side the certificate
    /// takes: a silo is a server to clients and other silos and a client to other silos, and a cluster client is a
    /// client. A certificate without the extension allows every use.
    /// </summary>
    private static void CheckKeyUsage(X509Certificate2 certificate, CertificateUse use, string described)
    {
        var extension = certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().FirstOrDefault();
        if (extension is null)
        {
            return;
        }

        var usages = extension.EnhancedKeyUsages.Cast<Oid>().Select(oid => oid.Value).ToHashSet();
        var missing = new List<string>();
        if (use == CertificateUse.Silo && !usages.Contains(ServerAuthenticationOid))
        {
            missing.Add($"server authentication ({ServerAuthenticationOid})");
        }

        if (!usages.Contains(ClientAuthenticationOid))
        {
            missing.Add($"client authentication ({ClientAuthenticationOid})");
        }

        if (missing.Count > 0)
        {
            string needs = use == CertificateUse.Silo
                ? "a silo needs both, because it accepts connections and connects to other silos"
                : "a client needs it to authenticate to the gateways";
            throw new ArgumentException(
                $"{described} has an extended key usage without {string.Join(" and ", missing)}, and {needs}. " +
                "Create a certificate with server and client authentication, or without an extended key usage extension.");
        }
    }

    /// <summary>Builds a chain from <paramref name="certificate"/> to <paramref name="caCertificate"/> as the only trusted root.</summary>
    private static bool ChainsTo(
        X509Certificate2 certificate,
        X509Certificate2 caCertificate,
        IReadOnlyList<X509Certificate2>? extraCertificates,
        string? requiredUsage,
        out string status)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(caCertificate);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (requiredUsage is not null)
        {
            chain.ChainPolicy.ApplicationPolicy.Add(new Oid(requiredUsage));
        }

        foreach (var extra in extraCertificates ?? [])
        {
            chain.ChainPolicy.ExtraStore.Add(extra);
        }

        if (chain.Build(certificate))
        {
            status = string.Empty;
            return true;
        }

        var problems = chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct().ToList();
        status = problems.Count > 0 ? string.Join(" ", problems) : "the chain did not build";
        return false;
    }

    private static string Describe(X509Certificate2 certificate) => $"'{certificate.Subject}' (thumbprint {certificate.Thumbprint})";

    private static string Side(CertificateUse use) => use == CertificateUse.Silo ? "silo" : "client";

    private static string Utc(DateTime localTime) =>
        localTime.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rejected the TLS certificate '{Subject}' (thumbprint {Thumbprint}) of a peer: {Reason}")]
    private static partial void LogRemoteCertificateRejected(ILogger logger, string subject, string thumbprint, string reason);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Rejected the TLS certificate '{Subject}' (thumbprint {Thumbprint}) of a peer: {Reason} It was also rejected {Suppressed} times since the previous line about it.")]
    private static partial void LogRemoteCertificateRejectedAgain(ILogger logger, string subject, string thumbprint, string reason, int suppressed);
}
