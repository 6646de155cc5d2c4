namespace Orleans.Optim.Algorithms;

/// <summary>
/// Torch's <c>torch.optim.AdamW</c> (PyTorch 1.13, <c>_single_tensor_adamw</c>): Adam with decoupled weight decay
/// (<c>param.mul_(1 - lr * weight_decay)</c> before the update), AMSGrad and maximize.
/// </summary>
/// <remarks>
/// State per parameter is the same as <see cref="Adam"/>'s. In PyTorch 1.13 AdamW has neither <c>differentiable</c>
/// nor <c>fused</c> in its param groups, and its defaults list <c>foreach</c> before <c>maximize</c>.
/// </remarks>
public sealed class AdamW : OptimizerAlgorithm
{
    /// <inheritdoc/>
    public override string Name => "AdamW";

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, object?>> Defaults { get; } =
    [
        new("lr", 1e-3),
        new("betas", new object?[] { 0.9, 0.999 }),
        new("eps", 1e-8),
        new("weight_decay", 1e-2),
        new("amsgrad", false),
        new("foreach", null),
        new("maximize", false),
        new("capturable", false),
    ];

    /// <inheritdoc/>
    public override AlgorithmOptions ParseOptions(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true) =>
        AdamFamily.Parse(new GroupOptionsReader(group, groupIndex, checkRanges));

    /// <inheritdoc/>
    public override IReadOnlyList<StateEntrySpec> StateEntries(AlgorithmOptions options) => AdamFamily.Entries((AdamOptions)options);

    /// <inheritdoc/>
    public override SliceState CreateState(AlgorithmOptions options, int length) => CreateZeroState(options, length);

    /// <inheritdoc/>
    public override void Step(AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path) =>
        AdamFamily.Step((AdamOptions)options, decoupledWeightDecay: true, state, param, grad, path, KernelParallelism.None);

    /// <inheritdoc/>
    public override void Step(
        AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path, KernelParallelism parallelism) =>
        AdamFamily.Step((AdamOptions)options, decoupledWeightDecay: true, state, param, grad, path, parallelism);
}
