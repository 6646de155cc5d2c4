using Orleans.Optim.Wire;

namespace Orleans.Optim.Shards;

/// <summary>What a shard keeps in grain storage: its configuration, values and state, in binary form.</summary>
[GenerateSerializer]
public sealed class ShardGrainState
{
    /// <summary>Configuration from the coordinator, or <see langword="null"/> before it.</summary>
    [Id(0)] public ShardConfig? Config { get; set; }

    /// <summary>Master values as raw float32 bytes, or <see langword="null"/> before the initial values arrive.</summary>
    [Id(1)] public byte[]? Values { get; set; }

    /// <summary>The slice's state encoded with <c>SliceStateBinary</c>; empty when it has none.</summary>
    [Id(2)] public byte[] State { get; set; } = [];

    /// <summary>Number of synchronous steps applied.</summary>
    [Id(3)] public long Step { get; set; }

    /// <summary>First part of the state's order key.</summary>
    [Id(4)] public long OrderStep { get; set; }

    /// <summary>Second part of the state's order key.</summary>
    [Id(5)] public long OrderPosition { get; set; }
}
