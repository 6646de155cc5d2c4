using Azure.Data.Tables;
using Azure.Storage.Blobs;
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

    /// <summary>Port for silo-to-silo traffic on 127.0.0.1. Default 11111.</summary>
    public int SiloPort { get; set; } = 11111;

    /// <summary>Port clients connect to on 127.0.0.1. Default 30000.</summary>
    public int GatewayPort { get; set; } = 30000;

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

    /// <summary>Settings of the shard grains (step timeout, persistence).</summary>
    public ShardOptions Shards { get; set; } = new();

    /// <summary>Settings of sharded checkpoints (store folder, how many to keep).</summary>
    public Checkpoints.CheckpointOptions Checkpoints { get; set; } = new();

    /// <summary>Checks the settings.</summary>
    /// <exception cref="ArgumentException">
    /// A port is outside 1..65535, the silo and gateway ports are the same, a shard setting is out of range, or the
    /// Azure Storage settings do not match <see cref="Clustering"/>.
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

        if (Shards.StepTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"Invalid {SectionName}:Shards:StepTimeout {Shards.StepTimeout}: expected a positive time span such as 00:01:00.");
        }

        if (Checkpoints.KeepLast < 1)
        {
            throw new ArgumentException($"Invalid {SectionName}:Checkpoints:KeepLast {Checkpoints.KeepLast}: expected at least 1.");
        }

        if (Shards.PersistEverySteps < 0)
        {
            throw new ArgumentException($"Invalid {SectionName}:Shards:PersistEverySteps {Shards.PersistEverySteps}: expected 0 (off) or a positive number of steps.");
        }

        ValidateClustering();
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
