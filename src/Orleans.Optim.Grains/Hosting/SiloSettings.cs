using System.Net;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Orleans.Optim.Security;
using Orleans.Optim.Shards;

namespace Orleans.Optim.Hosting;

/// <summary>
/// Settings of one silo, bound from the configuration section <c>Optim:Silo</c> (appsettings.json, environment
/// variables such as <c>Optim__Silo__SiloPort</c>, or command-line arguments such as <c>--Optim:Silo:SiloPort=11112</c>).
/// </summary>
public sealed class SiloSettings
{
    /// <summary>Configuration section of these settings.</summary>
    public const string SectionName = "Optim:Silo";

    /// <summary>Orleans cluster id; silos and clients must agree on it. Default <c>orleans-optim</c>.</summary>
    public string ClusterId { get; set; } = "orleans-optim";

    /// <summary>Orleans service id; keeps grain storage apart between deployments. Default <c>orleans-optim</c>.</summary>
    public string ServiceId { get; set; } = "orleans-optim";

    /// <summary>Names of the <see cref="Tls"/> settings, for error messages.</summary>
    public static readonly TlsSettingNames TlsNames = new(
        $"{SectionName}:Tls:{nameof(TlsSettings.CertificatePath)}",
        $"{SectionName}:Tls:{nameof(TlsSettings.CertificatePassword)}",
        $"{SectionName}:Tls:{nameof(TlsSettings.CaCertificatePath)}");

    /// <summary>Port for silo-to-silo traffic on <see cref="ListenAddress"/>. Default 11111.</summary>
    public int SiloPort { get; set; } = 11111;

    /// <summary>Port clients connect to on <see cref="ListenAddress"/>. Default 30000.</summary>
    public int GatewayPort { get; set; } = 30000;

    /// <summary>
    /// IP address that the silo and gateway ports listen on and that the silo advertises to other silos and clients.
    /// Only <see cref="SiloClustering.AzureStorage"/> accepts an address other than loopback. Default <c>127.0.0.1</c>.
    /// </summary>
    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>
    /// Whether the ports listen on every address of the host (<c>0.0.0.0</c>, or <c>::</c> for an IPv6
    /// <see cref="ListenAddress"/>) while <see cref="ListenAddress"/> is still the one advertised to the others; only
    /// with <see cref="SiloClustering.AzureStorage"/>. Default <see langword="false"/>.
    /// </summary>
    public bool ListenOnAnyAddress { get; set; }

    /// <summary>Mutual TLS between the silos and with clients; off until <see cref="TlsSettings.CertificatePath"/> is set.</summary>
    public TlsSettings Tls { get; set; } = new();

    /// <summary>
    /// Silo port of the primary silo that the others join; <see langword="null"/> or equal to <see cref="SiloPort"/>
    /// makes this silo the primary. Default <see langword="null"/>.
    /// </summary>
    public int? PrimarySiloPort { get; set; }

    /// <summary>
    /// How silos find each other and where grain state is stored. Default <see cref="SiloClustering.Localhost"/>.
    /// </summary>
    public SiloClustering Clustering { get; set; } = SiloClustering.Localhost;

    /// <summary>
    /// Connection string of the Azure Storage account (or Azurite) that contains the membership table and the grain
    /// state blobs; required with <see cref="SiloClustering.AzureStorage"/> and rejected otherwise. Default none.
    /// </summary>
    public string? AzureStorageConnectionString { get; set; }

    /// <summary>
    /// HTTP port of the Orleans Dashboard on 127.0.0.1, which shows silos, grain activations and call rates; none
    /// turns the dashboard off. The dashboard has no authentication, so it never listens beyond loopback. Default none.
    /// </summary>
    public int? DashboardPort { get; set; }

    /// <summary>Settings of the shard grains (step timeout, persistence).</summary>
    public ShardOptions Shards { get; set; } = new();

    /// <summary>Settings of sharded checkpoints (store folder, how many to keep).</summary>
    public Checkpoints.CheckpointOptions Checkpoints { get; set; } = new();

    /// <summary>Checks the settings.</summary>
    /// <exception cref="ArgumentException">
    /// A port is outside 1..65535, the silo, gateway and dashboard ports are not distinct, a shard setting is out of
    /// range, the Azure Storage or listen address settings do not match <see cref="Clustering"/>, or a TLS setting is given
    /// without <see cref="TlsSettings.CertificatePath"/>. The certificate files themselves are read by
    /// <see cref="OptimizerSiloConfiguration.ConfigureOptimizerSilo"/>.
    /// </exception>
    public void Validate()
    {
        CheckPort(SiloPort, nameof(SiloPort));
        CheckPort(GatewayPort, nameof(GatewayPort));
        if (PrimarySiloPort is { } primary)
        {
            CheckPort(primary, nameof(PrimarySiloPort));
        }

        if (SiloPort == GatewayPort)
        {
            throw new ArgumentException($"Invalid {SectionName}: SiloPort and GatewayPort are both {SiloPort}; give them different ports.");
        }

        if (DashboardPort is { } dashboard)
        {
            CheckPort(dashboard, nameof(DashboardPort));
            if (dashboard == SiloPort || dashboard == GatewayPort)
            {
                throw new ArgumentException(
                    $"Invalid {SectionName}:{nameof(DashboardPort)} {dashboard}: it is also the silo's " +
                    $"{(dashboard == SiloPort ? nameof(SiloPort) : nameof(GatewayPort))}. Give the dashboard a port of its own.");
            }
        }

        CheckTimeout(Shards.StepTimeout, "Shards:StepTimeout", "00:01:00");
        CheckTimeout(Checkpoints.RecoveryTimeout, "Checkpoints:RecoveryTimeout", "00:02:00");

        if (Checkpoints.KeepLast < 1)
        {
            throw new ArgumentException($"Invalid {SectionName}:Checkpoints:KeepLast {Checkpoints.KeepLast}: expected at least 1.");
        }

        if (Shards.PersistEverySteps < 0)
        {
            throw new ArgumentException($"Invalid {SectionName}:Shards:PersistEverySteps {Shards.PersistEverySteps}: expected 0 (off) or a positive number of steps.");
        }

        ValidateClustering();
        ValidateListenAddress();
        ValidateTls();
    }

    /// <summary>Parses <see cref="ListenAddress"/>.</summary>
    /// <exception cref="ArgumentException">The value is not an IP address, or is the unspecified address.</exception>
    public IPAddress ParseListenAddress()
    {
        string key = $"{SectionName}:{nameof(ListenAddress)}";
        if (!IPAddress.TryParse(ListenAddress, out var address))
        {
            throw new ArgumentException(
                $"Invalid {key} '{ListenAddress}': expected an IP address such as 127.0.0.1 or ::1, not a host name.");
        }

        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
        {
            throw new ArgumentException(
                $"Invalid {key} '{ListenAddress}': other silos and clients connect to this address, so it must be one address of " +
                $"this host. To listen on every address, set {SectionName}:{nameof(ListenOnAnyAddress)}=true and keep {key} the " +
                "address that the others reach.");
        }

        return address;
    }

    private void ValidateListenAddress()
    {
        var address = ParseListenAddress();
        if (Clustering != SiloClustering.Localhost)
        {
            return;
        }

        if (!IPAddress.IsLoopback(address))
        {
            throw new ArgumentException(
                $"Invalid {SectionName}:{nameof(ListenAddress)} '{ListenAddress}': Localhost clustering listens on a loopback " +
                $"address only, such as 127.0.0.1 or ::1. Set {SectionName}:Clustering=AzureStorage to listen on another address, " +
                "or give a loopback address.");
        }

        if (ListenOnAnyAddress)
        {
            throw new ArgumentException(
                $"Invalid {SectionName}:{nameof(ListenOnAnyAddress)} true: Localhost clustering listens on a loopback address " +
                $"only. Set {SectionName}:Clustering=AzureStorage to listen on every address, or remove the setting.");
        }
    }

    private void ValidateTls()
    {
        if (Tls.IsEnabled)
        {
            return;
        }

        if (!string.IsNullOrEmpty(Tls.CaCertificatePath))
        {
            throw new ArgumentException(
                $"Missing {TlsNames.CertificatePath}: {TlsNames.CaCertificatePath} is set, but TLS needs the " +
                "silo's own certificate. Give the path of a PFX (PKCS#12) file with the certificate and its private key, " +
                $"or remove {TlsNames.CaCertificatePath}.");
        }

        if (!string.IsNullOrEmpty(Tls.CertificatePassword))
        {
            // The message names the setting, never its value.
            throw new ArgumentException(
                $"Missing {TlsNames.CertificatePath}: {TlsNames.CertificatePassword} is set, but no certificate " +
                $"file is. Give the path of the PFX file it opens, or remove {TlsNames.CertificatePassword}.");
        }
    }

    private void ValidateClustering()
    {
        switch (Clustering)
        {
            case SiloClustering.Localhost:
                if (!string.IsNullOrEmpty(AzureStorageConnectionString))
                {
                    throw new ArgumentException(
                        $"Invalid {SectionName}:AzureStorageConnectionString: it is set, but {SectionName}:Clustering is Localhost. " +
                        $"Set {SectionName}:Clustering=AzureStorage to use it, or remove it.");
                }

                break;

            case SiloClustering.AzureStorage:
                if (string.IsNullOrWhiteSpace(AzureStorageConnectionString))
                {
                    throw new ArgumentException(
                        $"Missing {SectionName}:AzureStorageConnectionString: {SectionName}:Clustering=AzureStorage needs the connection string " +
                        "of the storage account, such as the one `scripts/azurite.sh connection-string` prints for a local Azurite.");
                }

                if (PrimarySiloPort is { } primary)
                {
                    throw new ArgumentException(
                        $"Invalid {SectionName}:PrimarySiloPort {primary}: AzureStorage clustering has no primary silo, because silos find " +
                        "each other in the membership table. Remove the setting.");
                }

                CheckConnectionString(AzureStorageConnectionString);
                break;

            default:
                throw new ArgumentException($"Invalid {SectionName}:Clustering {Clustering}: expected Localhost or AzureStorage.");
        }
    }

    /// <summary>
    /// Parses the connection string the way the table and blob clients do, so that a malformed one fails before the
    /// silo starts. The message leaves out the string itself, because it contains the account key.
    /// </summary>
    private static void CheckConnectionString(string connectionString)
    {
        try
        {
            _ = new TableServiceClient(connectionString);
            _ = new BlobServiceClient(connectionString);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
        {
            throw new ArgumentException(
                $"Invalid {SectionName}:AzureStorageConnectionString: {e.Message} Expected a storage connection string with " +
                "DefaultEndpointsProtocol, AccountName, AccountKey, BlobEndpoint and TableEndpoint, such as the one " +
                "`scripts/azurite.sh connection-string` prints.",
                e);
        }
    }

    /// <summary>Longest step or recovery timeout accepted; longer values are most likely a bare number read as days.</summary>
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromDays(1);

    private static void CheckTimeout(TimeSpan value, string name, string example)
    {
        if (value <= TimeSpan.Zero || value > MaxTimeout)
        {
            throw new ArgumentException(
                $"Invalid {SectionName}:{name} {value}: expected a positive time span of at most 1 day, written hh:mm:ss such as " +
                $"{example}. A bare number such as 5 is read as days.");
        }
    }

    private static void CheckPort(int port, string name)
    {
        if (port is < 1 or > 65535)
        {
            throw new ArgumentException($"Invalid {SectionName}:{name} {port}: expected a TCP port from 1 to 65535.");
        }
    }
}

/// <summary>How silos find each other and where they keep grain state.</summary>
public enum SiloClustering
{
    /// <summary>
    /// Orleans' localhost clustering with a primary silo, and in-memory grain storage: state ends with the silos.
    /// </summary>
    Localhost,

    /// <summary>
    /// Azure Table membership and Azure Blob grain storage in one storage account (Azurite on one machine): no silo
    /// is the primary, and grain state outlives the silos.
    /// </summary>
    AzureStorage,
}
