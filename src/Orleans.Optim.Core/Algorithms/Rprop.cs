using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Orleans.Optim.Python;

namespace Orleans.Optim.Algorithms;

/// <summary>Hyperparameters of one Rprop param group.</summary>
/// <param name="Lr">Initial step size of every element.</param>
/// <param name="EtaMinus">Factor that shrinks an element's step size when its gradient changes sign.</param>
/// <param name="EtaPlus">Factor that grows an element's step size when its gradient keeps its sign.</param>
/// <param name="StepSizeMin">Smallest step size.</param>
/// <param name="StepSizeMax">Largest step size.</param>
/// <param name="Maximize">Whether to maximize the objective.</param>
public sealed record RpropOptions(double Lr, double EtaMinus, double EtaPlus, double StepSizeMin, double StepSizeMax, bool Maximize)
    : AlgorithmOptions;

/// <summary>
/// Torch's <c>torch.optim.Rprop</c>, resilient backpropagation (PyTorch 1.13, <c>_single_tensor_rprop</c>), with
/// maximize.
/// </summary>
/// <remarks>
/// State per parameter, created at its first gradient: <c>step</c> (a Python int), <c>prev</c> (the previous
/// gradient, zeroed where its sign flipped) and <c>step_size</c> (one step size per element, <c>lr</c> at first).
/// </remarks>
public sealed class Rprop : OptimizerAlgorithm
{
    private static readonly StateEntrySpec[] s_entries =
    [
        new("step", StateValueKind.Int),
        new("prev", StateValueKind.ParamTensor),
        new("step_size", StateValueKind.ParamTensor),
    ];

    /// <inheritdoc/>
    public override string Name => "Rprop";

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, object?>> Defaults { get; } =
    [
        new("lr", 1e-2),
        new("etas", new object?[] { 0.5, 1.2 }),
        new("step_sizes", new object?[] { 1e-6, 50L }),
        new("foreach", null),
        new("maximize", false),
    ];

    /// <inheritdoc/>
    public override AlgorithmOptions ParseOptions(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true)
    {
        var reader = new GroupOptionsReader(group, groupIndex, checkRanges);
        var (etaminus, etaplus) = reader.Pair("etas");
        var (step_size_min, step_size_max) = reader.Pair("step_sizes");
        var options = new RpropOptions(
            Lr: reader.Number("lr"),
            EtaMinus: etaminus,
            EtaPlus: etaplus,
            StepSizeMin: step_size_min,
            StepSizeMax: step_size_max,
            Maximize: reader.Flag("maximize"));
        reader.RequireForeach();

        if (!(options.Lr >= 0.0))
        {
            reader.RejectOutOfRange("lr", $"Invalid learning rate: {PythonValues.FormatFloat(options.Lr)}", "a value >= 0.0");
        }

        if (!(0.0 < etaminus && etaminus < 1.0 && 1.0 < etaplus))
        {
            reader.RejectOutOfRange(
                "etas",
                $"Invalid eta values: {PythonValues.FormatFloat(etaminus)}, {PythonValues.FormatFloat(etaplus)}",
                "0.0 < etas[0] < 1.0 < etas[1]");
        }

        return options;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<StateEntrySpec> StateEntries(AlgorithmOptions options) => s_entries;

    /// <inheritdoc/>
    public override SliceState CreateState(AlgorithmOptions options, int length)
    {
        // step_size = grad.new().resize_as_(grad).fill_(lr), with lr narrowed to float32.
        var step_size = new float[length];
        Array.Fill(step_size, (float)((RpropOptions)options).Lr);
        return new([
            StateEntry.Int("step", 0),
            StateEntry.Slice("prev", new float[length]),
            StateEntry.Slice("step_size", step_size),
        ]);
    }

    /// <inheritdoc/>
    public override void Step(AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path)
    {
        var o = (RpropOptions)options;

        // Rprop.step() adds 1 to the Python int before the update.
        state["step"].Increment();

        var kernel = new RpropKernel(
            Maximize: o.Maximize,
            EtaMinus: (float)o.EtaMinus,
            EtaPlus: (float)o.EtaPlus,
            StepSizeMin: (float)o.StepSizeMin,
            StepSizeMax: (float)o.StepSizeMax);

        float[] prev = state.Tensor("prev");
        float[] step_size = state.Tensor("step_size");
        if (path != KernelPath.Plain)
        {
            kernel.RunVectorized(param, grad, prev, step_size);
        }
        else
        {
            kernel.RunPlain(param, grad, prev, step_size, 0);
        }
    }

    /// <summary>
    /// The per-element arithmetic of torch's for-loop Rprop. <c>addcmul_</c> fuses multiply-add in torch's CPU kernels.
    /// </summary>
    private readonly record struct RpropKernel(bool Maximize, float EtaMinus, float EtaPlus, float StepSizeMin, float StepSizeMax)
    {
        public void RunPlain(Span<float> param, ReadOnlySpan<float> grad, Span<float> prev, Span<float> step_size, int start)
        {
            for (int i = start; i < param.Length; i++)
            {
                float g = Maximize ? -grad[i] : grad[i];

                // sign = grad.mul(prev).sign(): the float32 product, so one that underflows to 0 has sign 0.
                float sign = Sign(g * prev[i]);

                // sign[sign.gt(0)] = etaplus; sign[sign.lt(0)] = etaminus; sign[sign.eq(0)] = 1, in that order.
                if (sign > 0)
                {
                    sign = EtaPlus;
                }

                if (sign < 0)
                {
                    sign = EtaMinus;
                }

                if (sign == 0)
                {
                    sign = 1;
                }

                // step_size.mul_(sign).clamp_(step_size_min, step_size_max)
                float size = Clamp(step_size[i] * sign, StepSizeMin, StepSizeMax);
                step_size[i] = size;

                // grad[sign.eq(etaminus)] = 0 on a clone of grad
                if (sign == EtaMinus)
                {
                    g = 0;
                }

                // param.addcmul_(grad.sign(), step_size, value=-1)
                param[i] = MathF.FusedMultiplyAdd(-1f * Sign(g), size, param[i]);

                // prev.copy_(grad)
                prev[i] = g;
            }
        }

        public void RunVectorized(Span<float> param, ReadOnlySpan<float> grad, Span<float> prev, Span<float> step_size)
        {
            var etaMinus = Vector256.Create(EtaMinus);
            var etaPlus = Vector256.Create(EtaPlus);
            var stepSizeMin = Vector256.Create(StepSizeMin);
            var stepSizeMax = Vector256.Create(StepSizeMax);
            var minusOne = Vector256.Create(-1f);
            var one = Vector256.Create(1f);
            var zero = Vector256<float>.Zero;

            ref float pRef = ref MemoryMarshal.GetReference(param);
            ref float gRef = ref MemoryMarshal.GetReference(grad);
            ref float prevRef = ref MemoryMarshal.GetReference(prev);
            ref float sizeRef = ref MemoryMarshal.GetReference(step_size);

            int width = Vector256<float>.Count;
            int i = 0;
            for (; i <= param.Length - width; i += width)
            {
                nuint at = (nuint)i;
                var g = Vector256.LoadUnsafe(ref gRef, at);
                if (Maximize)
                {
                    g = -g;
                }

                var sign = Sign(g * Vector256.LoadUnsafe(ref prevRef, at));
                sign = Vector256.ConditionalSelect(Vector256.GreaterThan(sign, zero), etaPlus, sign);
                sign = Vector256.ConditionalSelect(Vector256.LessThan(sign, zero), etaMinus, sign);
                sign = Vector256.ConditionalSelect(Vector256.Equals(sign, zero), one, sign);

                var size = Clamp(Vector256.LoadUnsafe(ref sizeRef, at) * sign, stepSizeMin, stepSizeMax);
                size.StoreUnsafe(ref sizeRef, at);

                g = Vector256.ConditionalSelect(Vector256.Equals(sign, etaMinus), zero, g);
                Vector256.FusedMultiplyAdd(minusOne * Sign(g), size, Vector256.LoadUnsafe(ref pRef, at)).StoreUnsafe(ref pRef, at);
                g.StoreUnsafe(ref prevRef, at);
            }

            RunPlain(param, grad, prev, step_size, i);
        }

        // torch.sign on float32: (0 < x) - (x < 0), so both zeros and NaN give +0.
        private static float Sign(float x) => (x > 0 ? 1f : 0f) - (x < 0 ? 1f : 0f);

        private static Vector256<float> Sign(Vector256<float> x)
        {
            var one = Vector256.Create(1f);
            var zero = Vector256<float>.Zero;
            return Vector256.ConditionalSelect(Vector256.GreaterThan(x, zero), one, zero) - Vector256.ConditionalSelect(Vector256.LessThan(x, zero), one, zero);
        }

        // clamp_(min, max) is std::min(std::max(x, min), max) in torch's CPU kernel: NaN stays NaN, and max wins over min.
        private static float Clamp(float x, float min, float max)
        {
            float low = x < min ? min : x;
            return max < low ? max : low;
        }

        private static Vector256<float> Clamp(Vector256<float> x, Vector256<float> min, Vector256<float> max)
        {
            var low = Vector256.ConditionalSelect(Vector256.LessThan(x, min), min, x);
            return Vector256.ConditionalSelect(Vector256.LessThan(max, low), max, low);
        }
    }
}
