using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Orleans.Optim.Python;

namespace Orleans.Optim.Algorithms;

/// <summary>Hyperparameters of one NAdam param group.</summary>
public sealed record NAdamOptions(double Lr, double Beta1, double Beta2, double Eps, double WeightDecay, double MomentumDecay)
    : AlgorithmOptions;

/// <summary>
/// Torch's <c>torch.optim.NAdam</c> as PyTorch 1.13 runs it with <c>foreach=True</c> (<c>_multi_tensor_nadam</c>), with
/// L2 weight decay added to the gradient and momentum decay.
/// </summary>
/// <remarks>
/// <para>
/// Every group runs the foreach formula, whatever its <c>foreach</c> setting. PyTorch 1.13's for-loop path
/// (<c>_single_tensor_nadam</c>, the default) computes <c>mu_product_next</c> as <c>mu_product * mu * mu_next</c>,
/// one <c>mu</c> too many. Its foreach path uses <c>mu_product * mu_next</c>, the formula of the NAdam paper and of
/// PyTorch 2.0 and later in both paths. So for groups with <c>foreach</c> None or False, parameters differ from
/// torch 1.13's in their low bits and more as <c>mu</c> shrinks the step.
/// </para>
/// <para>
/// State per parameter, created at its first gradient: <c>step</c> (a 0-d float32 tensor), <c>mu_product</c> (a 0-d
/// float32 tensor, 1.0 at first), <c>exp_avg</c> and <c>exp_avg_sq</c>.
/// </para>
/// </remarks>
public sealed class NAdam : OptimizerAlgorithm
{
    private static readonly StateEntrySpec[] s_entries =
    [
        new("step", StateValueKind.ScalarTensor),
        new("mu_product", StateValueKind.ScalarTensor),
        new("exp_avg", StateValueKind.ParamTensor),
        new("exp_avg_sq", StateValueKind.ParamTensor),
    ];

    /// <inheritdoc/>
    public override string Name => "NAdam";

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, object?>> Defaults { get; } =
    [
        new("lr", 2e-3),
        new("betas", new object?[] { 0.9, 0.999 }),
        new("eps", 1e-8),
        new("weight_decay", 0L),
        new("momentum_decay", 4e-3),
        new("foreach", null),
    ];

    /// <inheritdoc/>
    public override AlgorithmOptions ParseOptions(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true)
    {
        var reader = new GroupOptionsReader(group, groupIndex, checkRanges);
        var (beta1, beta2) = reader.Pair("betas");
        var options = new NAdamOptions(
            Lr: reader.Number("lr"),
            Beta1: beta1,
            Beta2: beta2,
            Eps: reader.Number("eps"),
            WeightDecay: reader.Number("weight_decay"),
            MomentumDecay: reader.Number("momentum_decay"));

        // NOTE: foreach None and False run the foreach formula too, where torch 1.13 runs its for-loop path with the
        // extra mu (see the class remarks).
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

        if (!(options.MomentumDecay >= 0.0))
        {
            reader.RejectOutOfRange("momentum_decay", $"Invalid momentum_decay value: {PythonValues.FormatFloat(options.MomentumDecay)}", "a value >= 0.0");
        }

        return options;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<StateEntrySpec> StateEntries(AlgorithmOptions options) => s_entries;

    /// <inheritdoc/>
    public override SliceState CreateState(AlgorithmOptions options, int length) =>
        new([
            StateEntry.ScalarTensor("step", 0),
            StateEntry.ScalarTensor("mu_product", 1),
            StateEntry.Slice("exp_avg", new float[length]),
            StateEntry.Slice("exp_avg_sq", new float[length]),
        ]);

    /// <inheritdoc/>
    /// <exception cref="DivideByZeroException">
    /// <c>mu_product</c> reached 1.0 in float32, where torch raises ZeroDivisionError. The state is left unchanged.
    /// </exception>
    public override void Step(AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path)
    {
        var o = (NAdamOptions)options;
        var step_t = state["step"];
        var mu_product = state["mu_product"];
        float[] exp_avg = state.Tensor("exp_avg");
        float[] exp_avg_sq = state.Tensor("exp_avg_sq");

        // torch._foreach_add_(state_steps, 1), in the dtype of the step tensor. The state changes only after the
        // divisions below succeed, so a step that raises leaves it as it was.
        var nextStep = step_t.Clone();
        nextStep.Increment();
        double step = nextStep.Number;

        // Scalar arithmetic runs in double, as Python does. bias_correction1 is computed by torch but unused.
        double bias_correction2 = 1 - Math.Pow(o.Beta2, step);
        double mu = o.Beta1 * (1.0 - 0.5 * Math.Pow(0.96, step * o.MomentumDecay));
        double mu_next = o.Beta1 * (1.0 - 0.5 * Math.Pow(0.96, (step + 1) * o.MomentumDecay));

        // torch._foreach_mul_(mu_products, mus) multiplies the 0-d float32 tensor by mu narrowed to float32.
        // LoadPlan casts a loaded mu_product to float32, as torch's load_state_dict does.
        float new_mu_product = (float)mu_product.Number * (float)mu;

        double bias_correction_sqrt = Math.Sqrt(bias_correction2);
        double step_size_grads = DivideAsPython(o.Lr * (1.0 - mu), 1.0 - new_mu_product, "1 - mu_product", step, new_mu_product) * -1;
        double step_size_expavg = DivideAsPython(o.Lr * mu_next, 1.0 - new_mu_product * mu_next, "1 - mu_product * mu_next", step, new_mu_product) * -1;

        step_t.SetNumber(step);
        mu_product.SetNumber(new_mu_product);

        var kernel = new NAdamKernel(
            ApplyWeightDecay: o.WeightDecay != 0,
            WeightDecay: (float)o.WeightDecay,
            Beta1: (float)o.Beta1,
            OneMinusBeta1: (float)(1 - o.Beta1),
            Beta2: (float)o.Beta2,
            OneMinusBeta2: (float)(1 - o.Beta2),
            BiasCorrectionSqrt: (float)bias_correction_sqrt,
            Eps: (float)o.Eps,
            StepSizeGrads: (float)step_size_grads,
            StepSizeExpAvg: (float)step_size_expavg);

        if (path != KernelPath.Plain)
        {
            kernel.RunVectorized(param, grad, exp_avg, exp_avg_sq);
        }
        else
        {
            kernel.RunPlain(param, grad, exp_avg, exp_avg_sq, 0);
        }
    }

    // Python's float division raises ZeroDivisionError where IEEE division would give infinity or NaN.
    private static double DivideAsPython(double dividend, double divisor, string divisorText, double step, float muProduct) =>
        divisor != 0
            ? dividend / divisor
            : throw new DivideByZeroException(
                $"NAdam step {PythonValues.FormatFloat(step)}: {divisorText} is 0 because mu_product is {PythonValues.FormatFloat(muProduct)} " +
                "in float32, and torch raises ZeroDivisionError here. Use a betas[0] further below 1.0 or a smaller momentum_decay.");

    /// <summary>
    /// The per-element arithmetic of torch's foreach NAdam. <c>add_(x, alpha=a)</c> and <c>addcmul_</c> fuse
    /// multiply-add in torch's CPU kernels, <c>addcdiv_</c> does not.
    /// </summary>
    private readonly record struct NAdamKernel(
        bool ApplyWeightDecay,
        float WeightDecay,
        float Beta1,
        float OneMinusBeta1,
        float Beta2,
        float OneMinusBeta2,
        float BiasCorrectionSqrt,
        float Eps,
        float StepSizeGrads,
        float StepSizeExpAvg)
    {
        public void RunPlain(Span<float> param, ReadOnlySpan<float> grad, Span<float> exp_avg, Span<float> exp_avg_sq, int start)
        {
            for (int i = start; i < param.Length; i++)
            {
                // torch._foreach_add_(grads, params, alpha=weight_decay)
                float g = ApplyWeightDecay ? MathF.FusedMultiplyAdd(param[i], WeightDecay, grad[i]) : grad[i];

                // exp_avg.mul_(beta1), then add_(grad, alpha=1 - beta1)
                float m = MathF.FusedMultiplyAdd(g, OneMinusBeta1, exp_avg[i] * Beta1);

                // exp_avg_sq.mul_(beta2), then addcmul_(grad, grad, 1 - beta2)
                float v = MathF.FusedMultiplyAdd(OneMinusBeta2 * g, g, exp_avg_sq[i] * Beta2);
                exp_avg[i] = m;
                exp_avg_sq[i] = v;

                // denom = exp_avg_sq.sqrt().div_(bias_correction_sqrt).add(eps)
                float denom = MathF.Sqrt(v) / BiasCorrectionSqrt + Eps;

                // param.addcdiv_(grad, denom, step_size_grads), then addcdiv_(exp_avg, denom, step_size_expavg)
                float p = param[i] + StepSizeGrads * g / denom;
                param[i] = p + StepSizeExpAvg * m / denom;
            }
        }

        public void RunVectorized(Span<float> param, ReadOnlySpan<float> grad, Span<float> exp_avg, Span<float> exp_avg_sq)
        {
            var weightDecay = Vector256.Create(WeightDecay);
            var beta1 = Vector256.Create(Beta1);
            var oneMinusBeta1 = Vector256.Create(OneMinusBeta1);
            var beta2 = Vector256.Create(Beta2);
            var oneMinusBeta2 = Vector256.Create(OneMinusBeta2);
            var biasCorrectionSqrt = Vector256.Create(BiasCorrectionSqrt);
            var eps = Vector256.Create(Eps);
            var stepSizeGrads = Vector256.Create(StepSizeGrads);
            var stepSizeExpAvg = Vector256.Create(StepSizeExpAvg);

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

                var denom = Vector256.Sqrt(v) / biasCorrectionSqrt + eps;
                p += stepSizeGrads * g / denom;
                (p + stepSizeExpAvg * m / denom).StoreUnsafe(ref pRef, at);
            }

            RunPlain(param, grad, exp_avg, exp_avg_sq, i);
        }
    }
}
