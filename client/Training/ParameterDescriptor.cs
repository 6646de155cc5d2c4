namespace Orleans.Optim.Cli.Training;

/// <summary>
/// Name and shape of one model parameter, spelled as in the model's PyTorch <c>state_dict()</c>.
/// </summary>
/// <param name="Name">State dict key, such as <c>0.weight</c>.</param>
/// <param name="Shape">Size of each dimension. The values are stored row-major.</param>
public sealed record ParameterDescriptor(string Name, IReadOnlyList<long> Shape)
{
    /// <summary>Number of float32 elements, the product of <see cref="Shape"/>.</summary>
    public int ElementCount { get; } = checked((int)Shape.Aggregate(1L, (product, size) => product * size));

    /// <summary>Returns the shape in torch notation, such as <c>[32, 64]</c>.</summary>
    public string FormatShape() => $"[{string.Join(", ", Shape)}]";
}
