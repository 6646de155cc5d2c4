using System.Runtime.Intrinsics;

namespace Orleans.Optim.Algorithms;

/// <summary>
/// Which implementation of an update kernel runs. Both give identical bits; tests hold them to that.
/// </summary>
public enum KernelPath
{
    /// <summary>256-bit vectors with a scalar tail.</summary>
    Vectorized,

    /// <summary>One element at a time: the reference path that reads like torch's code.</summary>
    Plain,
}

/// <summary>Chooses the kernel path for this machine.</summary>
public static class KernelPaths
{
    /// <summary>
    /// <see cref="KernelPath.Vectorized"/> when 256-bit vectors are hardware accelerated, otherwise <see cref="KernelPath.Plain"/>.
    /// </summary>
    public static KernelPath Default { get; } = Vector256.IsHardwareAccelerated ? KernelPath.Vectorized : KernelPath.Plain;
}
