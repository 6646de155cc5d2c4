namespace Orleans.Optim.Shards;

/// <summary>Silo-side settings of the shard grains (configuration section <c>Optim:Shards</c>).</summary>
public sealed class ShardOptions
{
    /// <summary>
    /// How long a synchronous step waits for every rank's gradient after the first one arrived; then the step fails
    /// for every waiting worker with the missing ranks named, and the shard stays at the previous step. Default 60 s.
    /// </summary>
    public TimeSpan StepTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Write the shard's values and state to grain storage every this many steps; 0 writes only when the shard is
    /// created, loaded or deactivated. Default 0.
    /// </summary>
    public int PersistEverySteps { get; set; }

    /// <summary>
    /// Write the shard's values and state when its activation ends (for example on a graceful silo shutdown).
    /// Default true; in-memory grain storage turns it off, because that storage ends with the silos.
    /// </summary>
    public bool PersistOnDeactivation { get; set; } = true;
}
