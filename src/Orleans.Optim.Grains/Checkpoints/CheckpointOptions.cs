namespace Orleans.Optim.Checkpoints;

/// <summary>Silo-side settings of sharded checkpoints (configuration section <c>Optim:Silo:Checkpoints</c>).</summary>
public sealed class CheckpointOptions
{
    /// <summary>Folder of the local checkpoint store; silos that share a machine share it. Default <c>checkpoints</c>, relative to the working directory.</summary>
    public string Path { get; set; } = "checkpoints";

    /// <summary>Blob container of sharded checkpoints when the silos run on Azure Storage. Default <c>orleans-optim-checkpoints</c>.</summary>
    public string AzureContainer { get; set; } = AzureBlobCheckpointStore.DefaultContainer;

    /// <summary>Number of complete checkpoints to keep per optimizer; older ones are deleted after each new checkpoint. Default 3.</summary>
    public int KeepLast { get; set; } = 3;

    /// <summary>How long a recovery waits for every shard to answer while the cluster notices a dead silo. Default 2 minutes.</summary>
    public TimeSpan RecoveryTimeout { get; set; } = TimeSpan.FromMinutes(2);
}
