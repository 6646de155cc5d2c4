using System.Runtime.Intrinsics;

namespace Orleans.Optim.Algorithms;

/// <summary>
/// Which implementation of an update kernel runs. All paths give identical bits; tests hold them to that.
/// </summary>
public enum KernelPath
{
    /// <summary>256-bit vectors with a scalar tail.</summary>
    Vectorized,

    /// <summary>One element at a time: the reference path that reads like torch's code.</summary>
    Plain,

    /// <summary>
    /// 512-bit vectors, then 256-bit vectors and a scalar tail. Adam, AdamW and SGD have 512-bit kernels. The other
    /// algorithms run their 256-bit kernels, and so does every algorithm where 512-bit vectors are not hardware
    /// accelerated.
    /// </summary>
    Vectorized512,
}

/// <summary>Chooses the kernel path for this machine.</summary>
public static class KernelPaths
{
    /// <summary>
    /// <see cref="KernelPath.Vectorized"/> when 256-bit vectors are hardware accelerated, otherwise <see cref="KernelPath.Plain"/>.
    /// </summary>
    /// <remarks>
    /// <see cref="KernelPath.Vectorized512"/> is not the default. On the AMD EPYC machine of BENCHMARKS.md it was
    /// within 3% of this path on 50M-element Adam and SGD steps, which wait on memory there. Only SGD gained (12%),
    /// and only on a slice that fits in the caches.
    /// </remarks>
    public static KernelPath Default { get; } = Vector256.IsHardwareAccelerated ? KernelPath.Vectorized : KernelPath.Plain;
}
