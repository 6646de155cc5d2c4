using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Orleans.Optim.Python;

namespace Orleans.Optim.Algorithms;

/// <summary>Hyperparameters of one Adamax param group.</summary>
public sealed record AdamaxOptions(double Lr, double Beta1, double Beta2, double Eps, double WeightDecay, bool Maximize) : AlgorithmOptions;

/// <summary>
/// Torch's <c>torch.optim.Adamax</c> (PyTorch 1.13, <c>_single_tensor_adamax</c>): Adam with the infinity norm, with
/// weight decay and maximize.
/// </summary>
/// <remarks>
/// State per parameter, created at its first gradient: <c>step</c> (a 0-d float32 tensor), <c>exp_avg</c> and
/// <c>exp_inf</c>.
/// </remarks>
public sealed class Adamax : OptimizerAlgorithm
{
    private static readonly StateEntrySpec[] s_entries =
    [
        new("step", StateValueKind.ScalarTensor),
        new("exp_avg", StateValueKind.ParamTensor),
        new("exp_inf", StateValueKind.ParamTensor),
    ];

    /// <inheritdoc/>
    public override string Name => "Adamax";

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, object?>> Defaults { get; } =
    [
        new("lr", 2e-3),
        new("betas", new object?[] { 0.9, 0.999 }),
        new("eps", 1e-8),
        new("weight_decay", 0L),
        new("foreach", null),
        new("maximize", false),
    ];

    /// <inheritdoc/>
    public override AlgorithmOptions ParseOptions(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true)
    {
        var reader = new GroupOptionsReader(group, groupIndex, checkRanges);
        var (beta1, beta2) = reader.Pair("betas");
        var options = new AdamaxOptions(
            Lr: reader.Number("lr"),
            Beta1: beta1,
            Beta2: beta2,
            Eps: reader.Number("eps"),
            WeightDecay: reader.Number("weight_decay"),
            Maximize: reader.Flag("maximize"));
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
        var o = (AdamaxOptions)options;
        var step_t = state["step"];
        float[] exp_avg = state.Tensor("exp_avg");
        float[] exp_inf = state.Tensor("exp_inf");

        // step_t += 1; step = step_t.item()
        step_t.Increment();
        double step = step_t.Number;

        // Python arithmetic in double, narrowed to float32 where addcdiv_ takes it as value=-clr.
        double bias_correction = 1 - Math.Pow(o.Beta1, step);
        double clr = o.Lr / bias_correction;

        var kernel = new AdamaxKernel(
            Maximize: o.Maximize,
            ApplyWeightDecay: o.WeightDecay != 0,
            WeightDecay: (float)o.WeightDecay,
            Beta1: (float)o.Beta1,
            OneMinusBeta1: (float)(1 - o.Beta1),
            Beta2: (float)o.Beta2,
            Eps: (float)o.Eps,
            NegativeClr: (float)-clr);

        if (path != KernelPath.Plain)
        {
            kernel.RunVectorized(param, grad, exp_avg, exp_inf);
        }
        else
        {
            kernel.RunPlain(param, grad, exp_avg, exp_inf, 0);
        }
    }

    /// <summary>
    /// The per-element arithmetic of torch's Adamax. Torch's CPU kernels fuse multiply-add in <c>add_(x, alpha=a)</c>
    /// but not in <c>addcdiv_</c>.
    /// </summary>
    private readonly record struct AdamaxKernel(
        bool Maximize,
        bool ApplyWeightDecay,
        float WeightDecay,
        float Beta1,
        float OneMinusBeta1,
        float Beta2,
        float Eps,
        float NegativeClr)
    {
        public void RunPlain(Span<float> param, ReadOnlySpan<float> grad, Span<float> exp_avg, Span<float> exp_inf, int start)
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

                // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                float m = MathF.FusedMultiplyAdd(g, OneMinusBeta1, exp_avg[i] * Beta1);
                exp_avg[i] = m;

                // torch.amax(torch.cat([exp_inf.mul_(beta2), grad.abs().add_(eps)]), 0, out=exp_inf)
                float u = MaxPropagatingNaN(exp_inf[i] * Beta2, MathF.Abs(g) + Eps);
                exp_inf[i] = u;

                // param.addcdiv_(exp_avg, exp_inf, value=-clr)
                param[i] += NegativeClr * m / u;
            }
        }

        public void RunVectorized(Span<float> param, ReadOnlySpan<float> grad, Span<float> exp_avg, Span<float> exp_inf)
        {
            var weightDecay = Vector256.Create(WeightDecay);
            var beta1 = Vector256.Create(Beta1);
            var oneMinusBeta1 = Vector256.Create(OneMinusBeta1);
            var beta2 = Vector256.Create(Beta2);
            var eps = Vector256.Create(Eps);
            var negativeClr = Vector256.Create(NegativeClr);

            ref float pRef = ref MemoryMarshal.GetReference(param);
            ref float gRef = ref MemoryMarshal.GetReference(grad);
            ref float mRef = ref MemoryMarshal.GetReference(exp_avg);
            ref float uRef = ref MemoryMarshal.GetReference(exp_inf);

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

                var m = Vector256.FusedMultiplyAdd(g, oneMinusBeta1, Vector256.LoadUnsafe(ref mRef, at) * beta1);
                m.StoreUnsafe(ref mRef, at);

                var u = MaxPropagatingNaN(Vector256.LoadUnsafe(ref uRef, at) * beta2, Vector256.Abs(g) + eps);
                u.StoreUnsafe(ref uRef, at);

                (p + negativeClr * m / u).StoreUnsafe(ref pRef, at);
            }

            RunPlain(param, grad, exp_avg, exp_inf, i);
        }

        // torch.amax returns NaN when either input is NaN.
        private static float MaxPropagatingNaN(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : MathF.Max(a, b);

        private static Vector256<float> MaxPropagatingNaN(Vector256<float> a, Vector256<float> b)
        {
            var nan = Vector256.IsNaN(a) | Vector256.IsNaN(b);
            return Vector256.ConditionalSelect(nan, Vector256.Create(float.NaN), Vector256.Max(a, b));
        }
    }
}
