using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Orleans.Optim.Tests.Infrastructure;

/// <summary>
/// Certificates made at run time for the TLS tests with <see cref="CertificateRequest"/> (ECDSA P-256 keys), and
/// written to files in a test's temporary folder; none is committed.
/// </summary>
public static class TestCertificates
{
    /// <summary>OID of the server authentication extended key usage.</summary>
    public const string ServerAuthentication = "1.3.6.1.5.5.7.3.1";

    /// <summary>OID of the client authentication extended key usage.</summary>
    public const string ClientAuthentication = "1.3.6.1.5.5.7.3.2";

    /// <summary>
    /// Creates a certificate with its private key, self-signed or issued by <paramref name="issuer"/>. It is valid from
    /// <paramref name="notBefore"/> (default one hour ago) to <paramref name="notAfter"/> (default one day from now).
    /// </summary>
    /// <param name="subject">Common name.</param>
    /// <param name="issuer">CA certificate with its private key, or <see langword="null"/> for a self-signed certificate.</param>
    /// <param name="notBefore">Start of the validity period.</param>
    /// <param name="notAfter">End of the validity period.</param>
    /// <param name="usages">
    /// Extended key usage OIDs; server and client authentication when <see langword="null"/>, and no extension when empty.
    /// </param>
    public static X509Certificate2 Create(
        string subject,
        X509Certificate2? issuer = null,
        DateTimeOffset? notBefore = null,
        DateTimeOffset? notAfter = null,
        string[]? usages = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={subject}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        usages ??= [ServerAuthentication, ClientAuthentication];
        if (usages.Length > 0)
        {
            var oids = new OidCollection();
            foreach (string usage in usages)
            {
                oids.Add(new Oid(usage));
            }

            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(oids, critical: false));
        }

        var from = notBefore ?? DateTimeOffset.UtcNow.AddHours(-1);
        var to = notAfter ?? DateTimeOffset.UtcNow.AddDays(1);
        if (issuer is null)
        {
            return request.CreateSelfSigned(from, to);
        }

        byte[] serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        using var issued = request.Create(issuer, from, to, serial);
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>Creates a self-signed CA certificate with its private key, valid from one hour ago for two days.</summary>
    public static X509Certificate2 CreateCa(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={subject}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(2));
    }

    /// <summary>Writes the certificate and its private key as a PFX file, and returns its path.</summary>
    public static string WritePfx(X509Certificate2 certificate, string path, string? password)
    {
        File.WriteAllBytes(path, certificate.Export(X509ContentType.Pfx, password));
        return path;
    }

    /// <summary>Writes a PFX file that contains the certificate without its private key, and returns its path.</summary>
    public static string WritePfxWithoutKey(X509Certificate2 certificate, string path, string? password)
    {
        using var publicOnly = X509CertificateLoader.LoadCertificate(certificate.RawData);
        File.WriteAllBytes(path, new X509Certificate2Collection(publicOnly).Export(X509ContentType.Pfx, password)!);
        return path;
    }

    /// <summary>Writes the certificate alone as a PEM file, and returns its path.</summary>
    public static string WritePem(X509Certificate2 certificate, string path)
    {
        File.WriteAllText(path, certificate.ExportCertificatePem());
        return path;
    }
}
