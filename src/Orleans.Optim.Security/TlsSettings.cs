namespace Orleans.Optim.Security;

/// <summary>
/// Files of the certificate that the silos and clients of one cluster present to each other in mutual TLS. The silo
/// host binds them from <c>Optim:Silo:Tls</c>; the command-line client takes them from its <c>--tls-*</c> options.
/// </summary>
public sealed class TlsSettings
{
    /// <summary>
    /// PFX (PKCS#12) file with the cluster certificate and its private key; TLS is off while it is empty. Default none.
    /// </summary>
    public string? CertificatePath { get; set; }

    /// <summary>Password of <see cref="CertificatePath"/>; none for a file exported without one. Default none.</summary>
    public string? CertificatePassword { get; set; }

    /// <summary>
    /// Certificate of a CA (PEM or DER file) whose issued certificates are accepted besides the cluster certificate
    /// itself. Default none: only peers with the same certificate are accepted.
    /// </summary>
    public string? CaCertificatePath { get; set; }

    /// <summary>Whether TLS is on, because <see cref="CertificatePath"/> is set.</summary>
    public bool IsEnabled => !string.IsNullOrWhiteSpace(CertificatePath);
}

/// <summary>
/// Where the values of <see cref="TlsSettings"/> came from, such as <c>Optim:Silo:Tls:CertificatePath</c> or
/// <c>--tls-certificate</c>, so that an error names the setting to fix.
/// </summary>
/// <param name="CertificatePath">Name of the setting of <see cref="TlsSettings.CertificatePath"/>.</param>
/// <param name="CertificatePassword">Name of the setting of <see cref="TlsSettings.CertificatePassword"/>.</param>
/// <param name="CaCertificatePath">Name of the setting of <see cref="TlsSettings.CaCertificatePath"/>.</param>
public sealed record TlsSettingNames(string CertificatePath, string CertificatePassword, string CaCertificatePath);

/// <summary>The side of a TLS connection that a certificate authenticates.</summary>
public enum CertificateUse
{
    /// <summary>A silo: server to clients and other silos, and client to other silos.</summary>
    Silo,

    /// <summary>A cluster client: client to the gateways only.</summary>
    Client,
}
