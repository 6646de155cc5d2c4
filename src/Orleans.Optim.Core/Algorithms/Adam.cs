using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Orleans.Optim.Python;

namespace Orleans.Optim.Algorithms;

/// <summary>Hyperparameters of one Adam or AdamW param group.</summary>
public sealed record AdamOptions(double Lr, double Beta1, double Beta2, double Eps, double WeightDecay, bool Amsgrad, bool Maximize)
    : AlgorithmOptions;

/// <summary>
/// Torch's <c>torch.optim.Adam</c> (PyTorch 1.13, <c>_single_tensor_adam</c>), with L2 weight decay added to the
/// gradient, AMSGrad and maximize.
/// </summary>
/// <remarks>
/// State per parameter, created at its first gradient: <c>step</c> (a 0-d float32 tensor), <c>exp_avg</c>,
/// <c>exp_avg_sq</c>, and <c>max_exp_avg_sq</c> with AMSGrad.
/// </remarks>
public sealed class Adam : OptimizerAlgorithm
{
    /// <inheritdoc/>
    public override string Name => "Adam";

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, object?>> Defaults { get; } =
    [
        new("lr", 1e-3),
        new("betas", new object?[] { 0.9, 0.999 }),
        new("eps", 1e-8),
        new("weight_decay", 0L),
        new("amsgrad", false),
        new("maximize", false),
        new("foreach", null),
        new("capturable", false),
        new("differentiable", false),
        new("fused", false),
    ];

    /// <inheritdoc/>
    public override AlgorithmOptions ParseOptions(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true)
    {
        var reader = new GroupOptionsReader(group, groupIndex, checkRanges);
        var options = AdamFamily.Parse(reader);
        reader.RequireOff("differentiable", "it changes torch's arithmetic and is meant for autograd through the step");
        reader.RequireOff("fused", "torch's fused Adam runs on CUDA only");
        return options;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<StateEntrySpec> StateEntries(AlgorithmOptions options) => AdamFamily.Entries((AdamOptions)options);

    /// <inheritdoc/>
    public override SliceState CreateState(AlgorithmOptions options, int length) => CreateZeroState(options, length);

    /// <inheritdoc/>
    public override void Step(AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path) =>
        AdamFamily.Step((AdamOptions)options, decoupledWeightDecay: false, state, param, grad, path, KernelParallelism.None);

    /// <inheritdoc/>
    public override void Step(
        AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path, KernelParallelism parallelism) =>
        AdamFamily.Step((AdamOptions)options, decoupledWeightDecay: false, state, param, grad, path, parallelism);
}

/// <summary>
/// What Adam and AdamW share: hyperparameter checks, state entries and the update kernel.
/// </summary>
internal static class AdamFamily
{
    private static readonly StateEntrySpec[] s_entries =
    [
        new("step", StateValueKind.ScalarTensor),
        new("exp_avg", StateValueKind.ParamTensor),
        new("exp_avg_sq", StateValueKind.ParamTensor),
    ];

    private static readonly StateEntrySpec[] s_amsgradEntries = [.. s_entries, new("max_exp_avg_sq", StateValueKind.ParamTensor)];

    public static StateEntrySpec[] Entries(AdamOptions options) => options.Amsgrad ? s_amsgradEntries : s_entries;

    /// <summary>Reads the shared hyperparameters and runs torch's constructor checks, in torch's order.</summary>
    public static AdamOptions Parse(GroupOptionsReader reader)
    {
        var (beta1, beta2) = reader.Pair("betas");
        var options = new AdamOptions(
            Lr: reader.Number("lr"),
            Beta1: beta1,
            Beta2: beta2,
            Eps: reader.Number("eps"),
            WeightDecay: reader.Number("weight_decay"),
            Amsgrad: reader.Flag("amsgrad"),
            Maximize: reader.Flag("maximize"));
        reader.RequireForeach();
        reader.RequireOff("capturable", "it is for CUDA graphs and needs CUDA tensors");

        if (!(options.Lr >= 0.0))
        {
            reader.RejectOutOfRange("lr", $"Invalid learning rate: {PythonValues.FormatFloat(options.Lr)}", "a value >= 0.0");
        }

        if (!(options.Eps >= 0.0))
        {
            reader.RejectOutOfRange("eps", $"Invalid epsilon value: {PythonValues.FormatFloat(options.Eps)}", "a value >= 0.0");
        }

        if (!(options.Beta1 >= 0.0 && options.Beta1 < 1.0))
        {
            reader.RejectOutOfRange("betas", $"Invalid beta parameter at index 0: {PythonValues.FormatFloat(options.Beta1)}", "0.0 <= betas[0] < 1.0");
        }

        if (!(options.Beta2 >= 0.0 && options.Beta2 < 1.0))
        {
            reader.RejectOutOfRange("betas", $"Invalid beta parameter at index 1: {PythonValues.FormatFloat(options.Beta2)}", "0.0 <= betas[1] < 1.0");
        }

        if (!(options.WeightDecay >= 0.0))
        {
            reader.RejectOutOfRange("weight_decay", $"Invalid weight_decay value: {PythonValues.FormatFloat(options.WeightDecay)}", "a value >= 0.0");
        }

        return options;
    }

    /// <summary>
    /// Runs one Adam (L2 decay on the gradient) or AdamW (decoupled decay on the parameter) step on a slice.
    /// </summary>
    /// <exception cref="ArgumentException">The gradient or a state tensor has a different length than the slice.</exception>
    public static void Step(
        AdamOptions o, bool decoupledWeightDecay, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path, KernelParallelism parallelism)
    {
        var step_t = state["step"];
        float[] exp_avg = state.Tensor("exp_avg");
        float[] exp_avg_sq = state.Tensor("exp_avg_sq");
        float[]? max_exp_avg_sq = o.Amsgrad ? state.Tensor("max_exp_avg_sq") : null;
        KernelChecks.RequireGradientLength(param, grad);
        KernelChecks.RequireStateLength(param, exp_avg, "exp_avg");
        KernelChecks.RequireStateLength(param, exp_avg_sq, "exp_avg_sq");
        if (max_exp_avg_sq is not null)
        {
            KernelChecks.RequireStateLength(param, max_exp_avg_sq, "max_exp_avg_sq");
        }

        // step_t += 1, in the dtype of the step tensor.
        step_t.Increment();

        // Scalar arithmetic runs in double, as Python does, and is narrowed to float32 where a tensor op takes it.
        double step = step_t.Number;
        double bias_correction1 = 1 - Math.Pow(o.Beta1, step);
        double bias_correction2 = 1 - Math.Pow(o.Beta2, step);
        double step_size = o.Lr / bias_correction1;
        double bias_correction2_sqrt = Math.Sqrt(bias_correction2);

        var kernel = new AdamKernel(
            Maximize: o.Maximize,
            ApplyGradWeightDecay: !decoupledWeightDecay && o.WeightDecay != 0,
            WeightDecay: (float)o.WeightDecay,
            ApplyParamDecay: decoupledWeightDecay,
            ParamDecay: (float)(1 - o.Lr * o.WeightDecay),
            Beta1: (float)o.Beta1,
            OneMinusBeta1: (float)(1 - o.Beta1),
            Beta2: (float)o.Beta2,
            OneMinusBeta2: (float)(1 - o.Beta2),
            Amsgrad: o.Amsgrad,
            BiasCorrection2Sqrt: (float)bias_correction2_sqrt,
            Eps: (float)o.Eps,
            NegativeStepSize: (float)-step_size);

        int chunkCount = parallelism.ChunkCount(param.Length);
        if (chunkCount > 1)
        {
            RunChunks(kernel, path, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, chunkCount);
        }
        else
        {
            kernel.Run(path, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq);
        }
    }

    // A separate method, so that a step on one thread does not allocate the closure.
    private static void RunChunks(
        AdamKernel kernel, KernelPath path, Span<float> param, ReadOnlySpan<float> grad, float[] exp_avg, float[] exp_avg_sq, float[]? max_exp_avg_sq, int chunkCount) =>
        KernelParallelism.RunChunks(param, grad, chunkCount, (start, paramChunk, gradChunk) => kernel.Run(
            path,
            paramChunk,
            gradChunk,
            exp_avg.AsSpan(start, paramChunk.Length),
            exp_avg_sq.AsSpan(start, paramChunk.Length),
            max_exp_avg_sq is null ? default : max_exp_avg_sq.AsSpan(start, paramChunk.Length)));

    /// <summary>
    /// The per-element arithmetic of torch's Adam and AdamW. Torch's CPU kernels fuse multiply-add in
    /// <c>add_(x, alpha=a)</c> and <c>addcmul_</c> but not in <c>addcdiv_</c>, so exactly those two use FMA here.
    /// </summary>
    private readonly record struct AdamKernel(
        bool Maximize,
        bool ApplyGradWeightDecay,
        float WeightDecay,
        bool ApplyParamDecay,
        float ParamDecay,
        float Beta1,
        float OneMinusBeta1,
        float Beta2,
        float OneMinusBeta2,
        bool Amsgrad,
        float BiasCorrection2Sqrt,
        float Eps,
        float NegativeStepSize)
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void RunPlain(Span<float> param, ReadOnlySpan<float> grad, Span<float> exp_avg, Span<float> exp_avg_sq, Span<float> max_exp_avg_sq, int start)
        {
            for (int i = start; i < param.Length; i++)
            {
                // grad = -grad when maximizing
                float g = Maximize ? -grad[i] : grad[i];

                // Adam: grad = grad.add(param, alpha=weight_decay)
                if (ApplyGradWeightDecay)
                {
                    g = MathF.FusedMultiplyAdd(param[i], WeightDecay, g);
                }

                // AdamW: param.mul_(1 - lr * weight_decay)
                float p = ApplyParamDecay ? param[i] * ParamDecay : param[i];

                // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                float m = MathF.FusedMultiplyAdd(g, OneMinusBeta1, exp_avg[i] * Beta1);

                // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                float v = MathF.FusedMultiplyAdd(OneMinusBeta2 * g, g, exp_avg_sq[i] * Beta2);
                exp_avg[i] = m;
                exp_avg_sq[i] = v;

                // With AMSGrad, torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq) feeds the denominator.
                if (Amsgrad)
                {
                    v = MaxPropagatingNaN(max_exp_avg_sq[i], v);
                    max_exp_avg_sq[i] = v;
                }

                // denom = (v.sqrt() / bias_correction2_sqrt).add_(eps)
                float denom = MathF.Sqrt(v) / BiasCorrection2Sqrt + Eps;

                // param.addcdiv_(exp_avg, denom, value=-step_size)
                param[i] = p + NegativeStepSize * m / denom;
            }
        }

        // The kernels skip tiered compilation, so every step runs the same fully optimized code from the first call
        // on, and the benchmark times the code that a long-running shard runs.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(KernelPath path, Span<float> param, ReadOnlySpan<float> grad, Span<float> exp_avg, Span<float> exp_avg_sq, Span<float> max_exp_avg_sq)
        {
            int i = 0;
            if (path == KernelPath.Vectorized512 && Vector512.IsHardwareAccelerated)
            {
                i = RunVector512(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq);
            }

            if (path != KernelPath.Plain)
            {
                i = RunVector256(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, i);
            }

            RunPlain(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, i);
        }

        // Returns the index of the first element left for a narrower loop.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private int RunVector256(Span<float> param, ReadOnlySpan<float> grad, Span<float> exp_avg, Span<float> exp_avg_sq, Span<float> max_exp_avg_sq, int start)
        {
            var weightDecay = Vector256.Create(WeightDecay);
            var paramDecay = Vector256.Create(ParamDecay);
            var beta1 = Vector256.Create(Beta1);
            var oneMinusBeta1 = Vector256.Create(OneMinusBeta1);
            var beta2 = Vector256.Create(Beta2);
            var oneMinusBeta2 = Vector256.Create(OneMinusBeta2);
            var biasCorrection2Sqrt = Vector256.Create(BiasCorrection2Sqrt);
            var eps = Vector256.Create(Eps);
            var negativeStepSize = Vector256.Create(NegativeStepSize);

            ref float pRef = ref MemoryMarshal.GetReference(param);
            ref float gRef = ref MemoryMarshal.GetReference(grad);
            ref float mRef = ref MemoryMarshal.GetReference(exp_avg);
            ref float vRef = ref MemoryMarshal.GetReference(exp_avg_sq);
            ref float maxRef = ref MemoryMarshal.GetReference(max_exp_avg_sq);

            int width = Vector256<float>.Count;
            int i = start;
            for (; i <= param.Length - width; i += width)
            {
                nuint at = (nuint)i;
                var p = Vector256.LoadUnsafe(ref pRef, at);
                var g = Vector256.LoadUnsafe(ref gRef, at);
                if (Maximize)
                {
                    g = -g;
                }

                if (ApplyGradWeightDecay)
                {
                    g = Vector256.FusedMultiplyAdd(p, weightDecay, g);
                }

                if (ApplyParamDecay)
                {
                    p *= paramDecay;
                }

                var m = Vector256.FusedMultiplyAdd(g, oneMinusBeta1, Vector256.LoadUnsafe(ref mRef, at) * beta1);
                var v = Vector256.FusedMultiplyAdd(oneMinusBeta2 * g, g, Vector256.LoadUnsafe(ref vRef, at) * beta2);
                m.StoreUnsafe(ref mRef, at);
                v.StoreUnsafe(ref vRef, at);

                if (Amsgrad)
                {
                    v = MaxPropagatingNaN(Vector256.LoadUnsafe(ref maxRef, at), v);
                    v.StoreUnsafe(ref maxRef, at);
                }

                var denom = Vector256.Sqrt(v) / biasCorrection2Sqrt + eps;
                (p + negativeStepSize * m / denom).StoreUnsafe(ref pRef, at);
            }

            return i;
        }

        // The 256-bit loop in 512-bit vectors. FMA, division and square root round correctly at every width, so
        // the bits do not depend on the width.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private int RunVector512(Span<float> param, ReadOnlySpan<float> grad, Span<float> exp_avg, Span<float> exp_avg_sq, Span<float> max_exp_avg_sq)
        {
            var weightDecay = Vector512.Create(WeightDecay);
            var paramDecay = Vector512.Create(ParamDecay);
            var beta1 = Vector512.Create(Beta1);
            var oneMinusBeta1 = Vector512.Create(OneMinusBeta1);
            var beta2 = Vector512.Create(Beta2);
            var oneMinusBeta2 = Vector512.Create(OneMinusBeta2);
            var biasCorrection2Sqrt = Vector512.Create(BiasCorrection2Sqrt);
            var eps = Vector512.Create(Eps);
            var negativeStepSize = Vector512.Create(NegativeStepSize);

            ref float pRef = ref MemoryMarshal.GetReference(param);
            ref float gRef = ref MemoryMarshal.GetReference(grad);
            ref float mRef = ref MemoryMarshal.GetReference(exp_avg);
            ref float vRef = ref MemoryMarshal.GetReference(exp_avg_sq);
            ref float maxRef = ref MemoryMarshal.GetReference(max_exp_avg_sq);

            int width = Vector512<float>.Count;
            int i = 0;
            for (; i <= param.Length - width; i += width)
            {
                nuint at = (nuint)i;
                var p = Vector512.LoadUnsafe(ref pRef, at);
                var g = Vector512.LoadUnsafe(ref gRef, at);
                if (Maximize)
                {
                    g = -g;
                }

                if (ApplyGradWeightDecay)
                {
                    g = Vector512.FusedMultiplyAdd(p, weightDecay, g);
                }

                if (ApplyParamDecay)
                {
                    p *= paramDecay;
                }

                var m = Vector512.FusedMultiplyAdd(g, oneMinusBeta1, Vector512.LoadUnsafe(ref mRef, at) * beta1);
                var v = Vector512.FusedMultiplyAdd(oneMinusBeta2 * g, g, Vector512.LoadUnsafe(ref vRef, at) * beta2);
                m.StoreUnsafe(ref mRef, at);
                v.StoreUnsafe(ref vRef, at);

                if (Amsgrad)
                {
                    v = MaxPropagatingNaN(Vector512.LoadUnsafe(ref maxRef, at), v);
                    v.StoreUnsafe(ref maxRef, at);
                }

                var denom = Vector512.Sqrt(v) / biasCorrection2Sqrt + eps;
                (p + negativeStepSize * m / denom).StoreUnsafe(ref pRef, at);
            }

            return i;
        }

        // torch.maximum returns NaN when either input is NaN.
        private static float MaxPropagatingNaN(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : MathF.Max(a, b);

        private static Vector256<float> MaxPropagatingNaN(Vector256<float> a, Vector256<float> b)
        {
            var nan = Vector256.IsNaN(a) | Vector256.IsNaN(b);
            return Vector256.ConditionalSelect(nan, Vector256.Create(float.NaN), Vector256.Max(a, b));
        }

        private static Vector512<float> MaxPropagatingNaN(Vector512<float> a, Vector512<float> b)
        {
            var nan = Vector512.IsNaN(a) | Vector512.IsNaN(b);
            return Vector512.ConditionalSelect(nan, Vector512.Create(float.NaN), Vector512.Max(a, b));
        }
    }
}
