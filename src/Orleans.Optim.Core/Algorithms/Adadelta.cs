using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Orleans.Optim.Python;

namespace Orleans.Optim.Algorithms;

/// <summary>Hyperparameters of one Adadelta param group.</summary>
public sealed record AdadeltaOptions(double Lr, double Rho, double Eps, double WeightDecay, bool Maximize) : AlgorithmOptions;

/// <summary>
/// Torch's <c>torch.optim.Adadelta</c> (PyTorch 1.13, <c>_single_tensor_adadelta</c>), with weight decay and maximize.
/// </summary>
/// <remarks>
/// State per parameter, created at its first gradient: <c>step</c> (a Python int that <c>step()</c> increments and
/// the update never reads), <c>square_avg</c> and <c>acc_delta</c>.
/// </remarks>
public sealed class Adadelta : OptimizerAlgorithm
{
    private static readonly StateEntrySpec[] s_entries =
    [
        new("step", StateValueKind.Int),
        new("square_avg", StateValueKind.ParamTensor),
        new("acc_delta", StateValueKind.ParamTensor),
    ];

    /// <inheritdoc/>
    public override string Name => "Adadelta";

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, object?>> Defaults { get; } =
    [
        new("lr", 1.0),
        new("rho", 0.9),
        new("eps", 1e-6),
        new("weight_decay", 0L),
        new("maximize", false),
        new("foreach", null),
    ];

    /// <inheritdoc/>
    public override AlgorithmOptions ParseOptions(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true)
    {
        var reader = new GroupOptionsReader(group, groupIndex, checkRanges);
        var options = new AdadeltaOptions(
            Lr: reader.Number("lr"),
            Rho: reader.Number("rho"),
            Eps: reader.Number("eps"),
            WeightDecay: reader.Number("weight_decay"),
            Maximize: reader.Flag("maximize"));
        reader.RequireForeach();

        if (!(options.Lr >= 0.0))
        {
            reader.RejectOutOfRange("lr", $"Invalid learning rate: {PythonValues.FormatFloat(options.Lr)}", "a value >= 0.0");
        }

        if (!(options.Rho >= 0.0 && options.Rho <= 1.0))
        {
            reader.RejectOutOfRange("rho", $"Invalid rho value: {PythonValues.FormatFloat(options.Rho)}", "0.0 <= rho <= 1.0");
        }

        if (!(options.Eps >= 0.0))
        {
            reader.RejectOutOfRange("eps", $"Invalid epsilon value: {PythonValues.FormatFloat(options.Eps)}", "a value >= 0.0");
        }

        if (!(options.WeightDecay >= 0.0))
        {
            reader.RejectOutOfRange("weight_decay", $"Invalid weight_decay value: {PythonValues.FormatFloat(options.WeightDecay)}", "a value >= 0.0");
        }

        return options;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<StateEntrySpec> StateEntries(AlgorithmOptions options) => s_entries;

    /// <inheritdoc/>
    public override SliceState CreateState(AlgorithmOptions options, int length) => CreateZeroState(options, length);

    /// <inheritdoc/>
    public override void Step(AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path)
    {
        var o = (AdadeltaOptions)options;
        float[] square_avg = state.Tensor("square_avg");
        float[] acc_delta = state.Tensor("acc_delta");

        // state['step'] += 1 in step(), before the update.
        state["step"].Increment();

        var kernel = new AdadeltaKernel(
            Maximize: o.Maximize,
            ApplyWeightDecay: o.WeightDecay != 0,
            WeightDecay: (float)o.WeightDecay,
            Rho: (float)o.Rho,
            OneMinusRho: (float)(1 - o.Rho),
            Eps: (float)o.Eps,
            NegativeLr: (float)-o.Lr);

        if (path != KernelPath.Plain)
        {
            kernel.RunVectorized(param, grad, square_avg, acc_delta);
        }
        else
        {
            kernel.RunPlain(param, grad, square_avg, acc_delta, 0);
        }
    }

    /// <summary>
    /// The per-element arithmetic of torch's Adadelta. Torch's CPU kernels fuse multiply-add in <c>add_(x, alpha=a)</c>
    /// and <c>addcmul_</c>; <c>add(eps)</c>, <c>sqrt_</c>, <c>div_</c> and <c>mul_</c> are single float32 operations.
    /// </summary>
    private readonly record struct AdadeltaKernel(
        bool Maximize,
        bool ApplyWeightDecay,
        float WeightDecay,
        float Rho,
        float OneMinusRho,
        float Eps,
        float NegativeLr)
    {
        public void RunPlain(Span<float> param, ReadOnlySpan<float> grad, Span<float> square_avg, Span<float> acc_delta, int start)
        {
            for (int i = start; i < param.Length; i++)
            {
                // grad = -grad when maximizing
                float g = Maximize ? -grad[i] : grad[i];

                // grad = grad.add(param, alpha=weight_decay)
                if (ApplyWeightDecay)
                {
                    g = MathF.FusedMultiplyAdd(param[i], WeightDecay, g);
                }

                // square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
                float sq = MathF.FusedMultiplyAdd(OneMinusRho * g, g, square_avg[i] * Rho);
                square_avg[i] = sq;

                // std = square_avg.add(eps).sqrt_()
                float std = MathF.Sqrt(sq + Eps);

                // delta = acc_delta.add(eps).sqrt_().div_(std).mul_(grad)
                float delta = MathF.Sqrt(acc_delta[i] + Eps) / std * g;

                // acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
                acc_delta[i] = MathF.FusedMultiplyAdd(OneMinusRho * delta, delta, acc_delta[i] * Rho);

                // param.add_(delta, alpha=-lr)
                param[i] = MathF.FusedMultiplyAdd(delta, NegativeLr, param[i]);
            }
        }

        public void RunVectorized(Span<float> param, ReadOnlySpan<float> grad, Span<float> square_avg, Span<float> acc_delta)
        {
            var weightDecay = Vector256.Create(WeightDecay);
            var rho = Vector256.Create(Rho);
            var oneMinusRho = Vector256.Create(OneMinusRho);
            var eps = Vector256.Create(Eps);
            var negativeLr = Vector256.Create(NegativeLr);

            ref float pRef = ref MemoryMarshal.GetReference(param);
            ref float gRef = ref MemoryMarshal.GetReference(grad);
            ref float sqRef = ref MemoryMarshal.GetReference(square_avg);
            ref float adRef = ref MemoryMarshal.GetReference(acc_delta);

            int width = Vector256<float>.Count;
            int i = 0;
            for (; i <= param.Length - width; i += width)
            {
                nuint at = (nuint)i;
                var p = Vector256.LoadUnsafe(ref pRef, at);
                var g = Vector256.LoadUnsafe(ref gRef, at);
                if (Maximize)
                {
                    g = -g;
                }

                if (ApplyWeightDecay)
                {
                    g = Vector256.FusedMultiplyAdd(p, weightDecay, g);
                }

                var sq = Vector256.FusedMultiplyAdd(oneMinusRho * g, g, Vector256.LoadUnsafe(ref sqRef, at) * rho);
                sq.StoreUnsafe(ref sqRef, at);

                var std = Vector256.Sqrt(sq + eps);
                var ad = Vector256.LoadUnsafe(ref adRef, at);
                var delta = Vector256.Sqrt(ad + eps) / std * g;
                Vector256.FusedMultiplyAdd(oneMinusRho * delta, delta, ad * rho).StoreUnsafe(ref adRef, at);

                Vector256.FusedMultiplyAdd(delta, negativeLr, p).StoreUnsafe(ref pRef, at);
            }

            RunPlain(param, grad, square_avg, acc_delta, i);
        }
    }
}
