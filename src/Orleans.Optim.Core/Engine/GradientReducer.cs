using Orleans.Optim.Layout;

namespace Orleans.Optim.Engine;

/// <summary>
/// Combines the gradients that the workers pushed for one synchronous step.
/// </summary>
/// <remarks>
/// The sum runs in rank order in float32, so the result does not depend on the order in which workers arrive. The mean
/// divides that sum by the world size. A rank that pushed no gradient for a parameter while others did counts as zeros,
/// as PyTorch's DistributedDataParallel does for unused parameters. When no rank pushed one, the parameter has no
/// gradient and is skipped.
/// </remarks>
public static class GradientReducer
{
    /// <summary>Reduces the per-rank gradients into <paramref name="destination"/>.</summary>
    /// <param name="perRank">
    /// One entry per rank: the gradient, or <see langword="null"/> when that rank had none. An array may be longer than
    /// <paramref name="destination"/>, as a pooled one is; only its first <c>destination.Length</c> elements count.
    /// </param>
    /// <param name="reduction">Mean or sum.</param>
    /// <param name="destination">Receives the result; its length is the slice length.</param>
    /// <returns>Whether any rank pushed a gradient.</returns>
    public static bool Reduce(IReadOnlyList<float[]?> perRank, GradientReduction reduction, Span<float> destination)
    {
        bool any = false;
        foreach (float[]? gradient in perRank)
        {
            if (gradient is null)
            {
                continue;
            }

            var values = gradient.AsSpan(0, destination.Length);
            if (!any)
            {
                values.CopyTo(destination);
                any = true;
            }
            else
            {
                System.Numerics.Tensors.TensorPrimitives.Add(destination, values, destination);
            }
        }

        if (!any)
        {
            return false;
        }

        if (reduction == GradientReduction.Mean && perRank.Count > 1)
        {
            System.Numerics.Tensors.TensorPrimitives.Divide(destination, (float)perRank.Count, destination);
        }

        return true;
    }

    /// <summary>
    /// Reduces the per-rank gradients as <see cref="Reduce"/> does, with the same bits, but in place: into the first
    /// rank's array with a gradient, which saves copying it.
    /// </summary>
    /// <param name="perRank">
    /// One entry per rank: the gradient, or <see langword="null"/> when that rank had none. An array may be longer than
    /// <paramref name="length"/>; only its first <paramref name="length"/> elements count, and those of the returned
    /// array are overwritten.
    /// </param>
    /// <param name="reduction">Mean or sum.</param>
    /// <param name="length">The slice length.</param>
    /// <returns>The array that contains the result in its first <paramref name="length"/> elements, or <see langword="null"/> when no rank pushed a gradient.</returns>
    public static float[]? ReduceInPlace(IReadOnlyList<float[]?> perRank, GradientReduction reduction, int length)
    {
        float[]? result = null;
        foreach (float[]? gradient in perRank)
        {
            if (gradient is null)
            {
                continue;
            }

            if (result is null)
            {
                result = gradient;
            }
            else
            {
                System.Numerics.Tensors.TensorPrimitives.Add(result.AsSpan(0, length), gradient.AsSpan(0, length), result.AsSpan(0, length));
            }
        }

        if (result is not null && reduction == GradientReduction.Mean && perRank.Count > 1)
        {
            System.Numerics.Tensors.TensorPrimitives.Divide(result.AsSpan(0, length), (float)perRank.Count, result.AsSpan(0, length));
        }

        return result;
    }
}
