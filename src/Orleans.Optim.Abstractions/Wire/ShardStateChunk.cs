namespace Orleans.Optim.Wire;

/// <summary>
/// A range of a shard's optimizer state as raw bytes, with the state's scalar entries and order key, read by
/// <c>IShardGrain.ReadState</c> so that a state dict can be gathered or exported without one message per shard
/// holding the whole slice.
/// </summary>
/// <param name="Step">The shard's step when the range was read.</param>
/// <param name="Header">
/// The slice's state encoded with <c>SliceStateBinary</c>, with every tensor entry encoded as an empty slice;
/// empty when the parameter has no state yet.
/// </param>
/// <param name="OrderStep">First part of the state's order key.</param>
/// <param name="OrderPosition">Second part of the state's order key.</param>
/// <param name="TotalBytes">Size of the shard's tensor bytes: the float32 tensor entries, in entry order, one after the other.</param>
/// <param name="Data">The requested range of those tensor bytes.</param>
[GenerateSerializer, Immutable]
public sealed record ShardStateChunk(
    [property: Id(0)] long Step,
    [property: Id(1)] byte[] Header,
    [property: Id(2)] long OrderStep,
    [property: Id(3)] long OrderPosition,
    [property: Id(4)] long TotalBytes,
    [property: Id(5)] byte[] Data)
{
    /// <summary>
    /// Largest range one read returns, in bytes: 16 MiB, well under Orleans' default <c>MaxMessageBodySize</c> of
    /// 100 MiB.
    /// </summary>
    public const int MaxBytes = 16 << 20;

    /// <summary>The <c>expectedStep</c> argument of <c>IShardGrain.ReadState</c> that accepts the shard's current step, whatever it is.</summary>
    public const long AnyStep = -1;
}
