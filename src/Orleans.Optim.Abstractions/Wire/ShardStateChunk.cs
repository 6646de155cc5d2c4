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
/// <param name="Silo">The silo the shard runs on, so that a reader can batch the next reads of one silo's shards.</param>
[GenerateSerializer, Immutable]
public sealed record ShardStateChunk(
    [property: Id(0)] long Step,
    [property: Id(1)] byte[] Header,
    [property: Id(2)] long OrderStep,
    [property: Id(3)] long OrderPosition,
    [property: Id(4)] long TotalBytes,
    [property: Id(5)] byte[] Data,
    [property: Id(6)] string Silo)
{
    /// <summary>
    /// Largest range one read returns, in bytes: 16 MiB, well under Orleans' default <c>MaxMessageBodySize</c> of
    /// 100 MiB.
    /// </summary>
    public const int MaxBytes = 16 << 20;

    /// <summary>The <c>expectedStep</c> argument of <c>IShardGrain.ReadState</c> that accepts the shard's current step, whatever it is.</summary>
    public const long AnyStep = -1;
}

/// <summary>One shard's part of a batched <c>IShardGrain.ReadStates</c>.</summary>
/// <param name="Shard">Shard index in the optimizer.</param>
/// <param name="Offset">First byte of the shard's tensor bytes.</param>
/// <param name="Count">Number of bytes.</param>
[GenerateSerializer, Immutable]
public sealed record ShardStateRequest([property: Id(0)] int Shard, [property: Id(1)] long Offset, [property: Id(2)] int Count)
{
    /// <summary>Most requests in one batch.</summary>
    public const int MaxBatch = 4096;
}
