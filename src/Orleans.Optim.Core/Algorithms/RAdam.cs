using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Orleans.Optim.Python;

namespace Orleans.Optim.Algorithms;

/// <summary>Hyperparameters of one RAdam param group.</summary>
public sealed record RAdamOptions(double Lr, double Beta1, double Beta2, double Eps, double WeightDecay) : AlgorithmOptions;

/// <summary>
/// Torch's <c>torch.optim.RAdam</c> (PyTorch 1.13, <c>_single_tensor_radam</c>), with L2 weight decay added to the
/// gradient.
/// </summary>
/// <remarks>
/// <para>
/// While the length of the approximated simple moving average, <c>rho_t</c>, is at most 5, the update is the
/// bias-corrected first moment times <c>lr</c>. After that it is also scaled by the adaptive learning rate and the
/// variance rectification term. With the default <c>betas[1]=0.999</c> that happens from step 6 on.
/// </para>
/// <para>
/// State per parameter, created at its first gradient: <c>step</c> (a 0-d float32 tensor), <c>exp_avg</c> and
/// <c>exp_avg_sq</c>.
/// </para>
/// </remarks>
public sealed class RAdam : OptimizerAlgorithm
{
    private static readonly StateEntrySpec[] s_entries =
    [
        new("step", StateValueKind.ScalarTensor),
        new("exp_avg", StateValueKind.ParamTensor),
        new("exp_avg_sq", StateValueKind.ParamTensor),
    ];

    /// <inheritdoc/>
    public override string Name => "RAdam";

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, object?>> Defaults { get; } =
    [
        new("lr", 1e-3),
        new("betas", new object?[] { 0.9, 0.999 }),
        new("eps", 1e-8),
        new("weight_decay", 0L),
        new("foreach", null),
    ];

    /// <inheritdoc/>
    public override AlgorithmOptions ParseOptions(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true)
    {
        var reader = new GroupOptionsReader(group, groupIndex, checkRanges);
        var (beta1, beta2) = reader.Pair("betas");
        var options = new RAdamOptions(
            Lr: reader.Number("lr"),
            Beta1: beta1,
            Beta2: beta2,
            Eps: reader.Number("eps"),
            WeightDecay: reader.Number("weight_decay"));

        // NOTE: foreach=True runs the for-loop arithmetic here. Torch 1.13's foreach RAdam computes the update
        // with addcdiv_ instead, so its parameters can differ in the last bits.
        reader.RequireForeach();

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

    /// <inheritdoc/>
    public override IReadOnlyList<StateEntrySpec> StateEntries(AlgorithmOptions options) => s_entries;

    /// <inheritdoc/>
    public override SliceState CreateState(AlgorithmOptions options, int length) => CreateZeroState(options, length);

    /// <inheritdoc/>
    public override void Step(AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path)
    {
        var o = (RAdamOptions)options;
        var step_t = state["step"];
        float[] exp_avg = state.Tensor("exp_avg");
        float[] exp_avg_sq = state.Tensor("exp_avg_sq");

        // step_t += 1, in the dtype of the step tensor.
        step_t.Increment();

        // Scalar arithmetic runs in double, as Python does, and is narrowed to float32 where a tensor op takes it.
        double step = step_t.Number;
        double bias_correction1 = 1 - Math.Pow(o.Beta1, step);
        double bias_correction2 = 1 - Math.Pow(o.Beta2, step);

        // The maximum length of the approximated SMA, and its length at this step.
        double rho_inf = 2 / (1 - o.Beta2) - 1;
        double rho_t = rho_inf - 2 * step * Math.Pow(o.Beta2, step) / bias_correction2;

        bool rectified = rho_t > 5.0;
        double rect = rectified ? Math.Sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) : 0;

        var kernel = new RAdamKernel(
            ApplyWeightDecay: o.WeightDecay != 0,
            WeightDecay: (float)o.WeightDecay,
            Beta1: (float)o.Beta1,
            OneMinusBeta1: (float)(1 - o.Beta1),
            Beta2: (float)o.Beta2,
            OneMinusBeta2: (float)(1 - o.Beta2),
            BiasCorrection1: (float)bias_correction1,
            Lr: (float)o.Lr,
            Rectified: rectified,
            BiasCorrection2Sqrt: (float)Math.Sqrt(bias_correction2),
            Eps: (float)o.Eps,
            Rect: (float)rect);

        if (path != KernelPath.Plain)
        {
            kernel.RunVectorized(param, grad, exp_avg, exp_avg_sq);
        }
        else
        {
            kernel.RunPlain(param, grad, exp_avg, exp_avg_sq, 0);
        }
    }

    /// <summary>
    /// The per-element arithmetic of torch's for-loop RAdam. <c>add(x, alpha=a)</c>, <c>add_(x, alpha=a)</c> and
    /// <c>addcmul_</c> fuse multiply-add in torch's CPU kernels. Every other op rounds to float32 on its own.
    /// </summary>
    private readonly record struct RAdamKernel(
        bool ApplyWeightDecay,
        float WeightDecay,
        float Beta1,
        float OneMinusBeta1,
        float Beta2,
        float OneMinusBeta2,
        float BiasCorrection1,
        float Lr,
        bool Rectified,
        float BiasCorrection2Sqrt,
        float Eps,
        float Rect)
    {
        public void RunPlain(Span<float> param, ReadOnlySpan<float> grad, Span<float> exp_avg, Span<float> exp_avg_sq, int start)
        {
            for (int i = start; i < param.Length; i++)
            {
                // grad = grad.add(param, alpha=weight_decay)
                float g = ApplyWeightDecay ? MathF.FusedMultiplyAdd(param[i], WeightDecay, grad[i]) : grad[i];

                // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                float m = MathF.FusedMultiplyAdd(g, OneMinusBeta1, exp_avg[i] * Beta1);

                // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                float v = MathF.FusedMultiplyAdd(OneMinusBeta2 * g, g, exp_avg_sq[i] * Beta2);
                exp_avg[i] = m;
                exp_avg_sq[i] = v;

                // bias_corrected_exp_avg = exp_avg / bias_correction1, then times lr
                float update = m / BiasCorrection1 * Lr;
                if (Rectified)
                {
                    // adaptive_lr = math.sqrt(bias_correction2) / exp_avg_sq.sqrt().add_(eps), which torch 1.13's
                    // Tensor.__rtruediv__ computes as reciprocal(denominator) * math.sqrt(bias_correction2).
                    float adaptive_lr = 1f / (MathF.Sqrt(v) + Eps) * BiasCorrection2Sqrt;
                    update = update * adaptive_lr * Rect;
                }

                // param.add_(update, alpha=-1.0)
                param[i] = MathF.FusedMultiplyAdd(update, -1f, param[i]);
            }
        }

        public void RunVectorized(Span<float> param, ReadOnlySpan<float> grad, Span<float> exp_avg, Span<float> exp_avg_sq)
        {
            var weightDecay = Vector256.Create(WeightDecay);
            var beta1 = Vector256.Create(Beta1);
            var oneMinusBeta1 = Vector256.Create(OneMinusBeta1);
            var beta2 = Vector256.Create(Beta2);
            var oneMinusBeta2 = Vector256.Create(OneMinusBeta2);
            var biasCorrection1 = Vector256.Create(BiasCorrection1);
            var lr = Vector256.Create(Lr);
            var biasCorrection2Sqrt = Vector256.Create(BiasCorrection2Sqrt);
            var eps = Vector256.Create(Eps);
            var rect = Vector256.Create(Rect);
            var one = Vector256.Create(1f);
            var minusOne = Vector256.Create(-1f);

            ref float pRef = ref MemoryMarshal.GetReference(param);
            ref float gRef = ref MemoryMarshal.GetReference(grad);
            ref float mRef = ref MemoryMarshal.GetReference(exp_avg);
            ref float vRef = ref MemoryMarshal.GetReference(exp_avg_sq);

            int width = Vector256<float>.Count;
            int i = 0;
            for (; i <= param.Length - width; i += width)
            {
                nuint at = (nuint)i;
                var p = Vector256.LoadUnsafe(ref pRef, at);
                var g = Vector256.LoadUnsafe(ref gRef, at);
                if (ApplyWeightDecay)
                {
                    g = Vector256.FusedMultiplyAdd(p, weightDecay, g);
                }

                var m = Vector256.FusedMultiplyAdd(g, oneMinusBeta1, Vector256.LoadUnsafe(ref mRef, at) * beta1);
                var v = Vector256.FusedMultiplyAdd(oneMinusBeta2 * g, g, Vector256.LoadUnsafe(ref vRef, at) * beta2);
                m.StoreUnsafe(ref mRef, at);
                v.StoreUnsafe(ref vRef, at);

                var update = m / biasCorrection1 * lr;
                if (Rectified)
                {
                    var adaptiveLr = one / (Vector256.Sqrt(v) + eps) * biasCorrection2Sqrt;
                    update = update * adaptiveLr * rect;
                }

                Vector256.FusedMultiplyAdd(update, minusOne, p).StoreUnsafe(ref pRef, at);
            }

            RunPlain(param, grad, exp_avg, exp_avg_sq, i);
        }
    }
}
