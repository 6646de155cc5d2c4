namespace Orleans.Optim.Algorithms;

/// <summary>
/// Length checks that the update kernels run before their vector loops, which read every array at the slice's
/// indices without bounds checks.
/// </summary>
internal static class KernelChecks
{
    /// <summary>Throws unless the gradient has as many elements as the slice.</summary>
    /// <exception cref="ArgumentException">The lengths differ.</exception>
    public static void RequireGradientLength(Span<float> param, ReadOnlySpan<float> grad)
    {
        if (grad.Length != param.Length)
        {
            throw new ArgumentException($"The gradient has {grad.Length} elements, but the slice has {param.Length}.", nameof(grad));
        }
    }

    /// <summary>Throws unless the state tensor <paramref name="name"/> has as many elements as the slice.</summary>
    /// <exception cref="ArgumentException">The lengths differ.</exception>
    public static void RequireStateLength(Span<float> param, float[] tensor, string name)
    {
        if (tensor.Length != param.Length)
        {
            throw new ArgumentException($"State entry '{name}' has {tensor.Length} elements, but the slice has {param.Length}.", nameof(tensor));
        }
    }
}
