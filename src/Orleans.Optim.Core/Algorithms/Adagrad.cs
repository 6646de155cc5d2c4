using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Orleans.Optim.Python;

namespace Orleans.Optim.Algorithms;

/// <summary>
/// Hyperparameters of one Adagrad param group. <c>Foreach</c> is whether the group sets <c>foreach=True</c>, which
/// changes how torch computes the decayed learning rate.
/// </summary>
public sealed record AdagradOptions(
    double Lr, double LrDecay, double Eps, double WeightDecay, double InitialAccumulatorValue, bool Foreach, bool Maximize)
    : AlgorithmOptions;

/// <summary>
/// Torch's <c>torch.optim.Adagrad</c> (PyTorch 1.13, <c>_single_tensor_adagrad</c> and <c>_multi_tensor_adagrad</c>
/// on dense gradients), with learning rate decay, an initial accumulator value, weight decay and maximize.
/// </summary>
/// <remarks>
/// State per parameter: <c>step</c> (a 0-d float32 tensor) and <c>sum</c>. Torch's constructor creates both for every
/// parameter, filling <c>sum</c> with the constructor's <c>initial_accumulator_value</c>. A group's own
/// <c>initial_accumulator_value</c> only goes through the checks and never reaches the state.
/// The two torch paths differ only in the decayed learning rate <c>clr</c>: Python double arithmetic without
/// <c>foreach</c>, float32 tensor arithmetic with <c>foreach=True</c>.
/// </remarks>
public sealed class Adagrad : OptimizerAlgorithm
{
    private const string InitialAccumulatorValueKey = "initial_accumulator_value";

    private static readonly StateEntrySpec[] s_entries =
    [
        new("step", StateValueKind.ScalarTensor),
        new("sum", StateValueKind.ParamTensor),
    ];

    /// <inheritdoc/>
    public override string Name => "Adagrad";

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, object?>> Defaults { get; } =
    [
        new("lr", 1e-2),
        new("lr_decay", 0L),
        new("eps", 1e-10),
        new("weight_decay", 0L),
        new(InitialAccumulatorValueKey, 0L),
        new("foreach", null),
        new("maximize", false),
    ];

    /// <inheritdoc/>
    public override bool CreatesStateEagerly => true;

    /// <inheritdoc/>
    public override AlgorithmOptions ParseOptions(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true)
    {
        var reader = new GroupOptionsReader(group, groupIndex, checkRanges);
        var options = new AdagradOptions(
            Lr: reader.Number("lr"),
            LrDecay: reader.Number("lr_decay"),
            Eps: reader.Number("eps"),
            WeightDecay: reader.Number("weight_decay"),
            InitialAccumulatorValue: reader.Number(InitialAccumulatorValueKey),
            Foreach: group.TryGetValue("foreach", out object? foreachValue) && foreachValue is true,
            Maximize: reader.Flag("maximize"));
        reader.RequireForeach();

        if (!(options.Lr >= 0.0))
        {
            reader.RejectOutOfRange("lr", $"Invalid learning rate: {PythonValues.FormatFloat(options.Lr)}", "a value >= 0.0");
        }

        if (!(options.LrDecay >= 0.0))
        {
            reader.RejectOutOfRange("lr_decay", $"Invalid lr_decay value: {PythonValues.FormatFloat(options.LrDecay)}", "a value >= 0.0");
        }

        if (!(options.WeightDecay >= 0.0))
        {
            reader.RejectOutOfRange("weight_decay", $"Invalid weight_decay value: {PythonValues.FormatFloat(options.WeightDecay)}", "a value >= 0.0");
        }

        CheckInitialAccumulatorValue(reader, options.InitialAccumulatorValue);

        if (!(options.Eps >= 0.0))
        {
            reader.RejectOutOfRange("eps", $"Invalid epsilon value: {PythonValues.FormatFloat(options.Eps)}", "a value >= 0.0");
        }

        return options;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<StateEntrySpec> StateEntries(AlgorithmOptions options) => s_entries;

    /// <summary>
    /// Creates a state with <c>sum</c> filled with the group's <c>initial_accumulator_value</c>, for a parameter
    /// without state. Adagrad parameters always have state, because <see cref="CreateInitialState"/> creates it with
    /// the optimizer and <c>load_state_dict</c> rejects a state dict that lacks some.
    /// </summary>
    public override SliceState CreateState(AlgorithmOptions options, int length) =>
        CreateFilledState(((AdagradOptions)options).InitialAccumulatorValue, length);

    /// <summary>
    /// Creates the state torch's constructor creates: <c>step = torch.tensor(0.0)</c> and
    /// <c>sum = torch.full_like(p, initial_accumulator_value)</c> with the constructor's value.
    /// </summary>
    public override SliceState CreateInitialState(IReadOnlyDictionary<string, object?> defaults, AlgorithmOptions options, int length) =>
        CreateFilledState(GroupOptionsReader.ForDefaults(defaults).Number(InitialAccumulatorValueKey), length);

    /// <inheritdoc/>
    public override void Step(AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path)
    {
        var o = (AdagradOptions)options;
        var step_t = state["step"];
        float[] state_sum = state.Tensor("sum");

        // step_t += 1; step = step_t.item()
        step_t.Increment();
        double step = step_t.Number;

        var kernel = new AdagradKernel(
            Maximize: o.Maximize,
            ApplyWeightDecay: o.WeightDecay != 0,
            WeightDecay: (float)o.WeightDecay,
            Eps: (float)o.Eps,
            NegativeClr: o.Foreach ? ForeachNegativeClr(o, step) : SingleTensorNegativeClr(o, step));

        if (path != KernelPath.Plain)
        {
            kernel.RunVectorized(param, grad, state_sum);
        }
        else
        {
            kernel.RunPlain(param, grad, state_sum, 0);
        }
    }

    /// <summary>Runs torch's constructor check on the constructor's <c>initial_accumulator_value</c>, which fills the state.</summary>
    protected override void CheckDefaults(IReadOnlyDictionary<string, object?> defaults)
    {
        var reader = GroupOptionsReader.ForDefaults(defaults);
        CheckInitialAccumulatorValue(reader, reader.Number(InitialAccumulatorValueKey));
    }

    private static void CheckInitialAccumulatorValue(GroupOptionsReader reader, double value)
    {
        if (!(value >= 0.0))
        {
            reader.RejectOutOfRange(
                InitialAccumulatorValueKey, $"Invalid initial_accumulator_value value: {PythonValues.FormatFloat(value)}", "a value >= 0.0");
        }
    }

    // clr = lr / (1 + (step - 1) * lr_decay) in Python double, narrowed to float32 where addcdiv_ takes value=-clr.
    private static float SingleTensorNegativeClr(AdagradOptions o, double step) => (float)-(o.Lr / (1 + (step - 1) * o.LrDecay));

    // minus_clr = -lr / (1 + (step - 1) * lr_decay) with step a float32 tensor: each operation is a float32 tensor op
    // with the Python scalar narrowed to float32, and torch evaluates scalar / tensor as tensor.reciprocal() * scalar.
    // The update then computes grad * minus_clr / std, the same operations as addcdiv_ with value=-clr.
    private static float ForeachNegativeClr(AdagradOptions o, double step)
    {
        // NOTE: a float64 step tensor from a loaded file would make torch compute this in float64; only float32 is matched.
        float decayed = (((float)step - 1f) * (float)o.LrDecay) + 1f;
        return (1f / decayed) * (float)-o.Lr;
    }

    private static SliceState CreateFilledState(double initialAccumulatorValue, int length)
    {
        var sum = new float[length];
        Array.Fill(sum, (float)initialAccumulatorValue);
        return new([StateEntry.ScalarTensor("step", 0), StateEntry.Slice("sum", sum)]);
    }

    /// <summary>
    /// The per-element arithmetic of torch's Adagrad. Torch's CPU kernels fuse multiply-add in <c>add(x, alpha=a)</c>
    /// and <c>addcmul_</c> but not in <c>addcdiv_</c>.
    /// </summary>
    private readonly record struct AdagradKernel(bool Maximize, bool ApplyWeightDecay, float WeightDecay, float Eps, float NegativeClr)
    {
        public void RunPlain(Span<float> param, ReadOnlySpan<float> grad, Span<float> state_sum, int start)
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

                // state_sum.addcmul_(grad, grad, value=1), where value * grad is exact.
                float sum = MathF.FusedMultiplyAdd(g, g, state_sum[i]);
                state_sum[i] = sum;

                // std = state_sum.sqrt().add_(eps)
                float std = MathF.Sqrt(sum) + Eps;

                // param.addcdiv_(grad, std, value=-clr)
                param[i] += NegativeClr * g / std;
            }
        }

        public void RunVectorized(Span<float> param, ReadOnlySpan<float> grad, Span<float> state_sum)
        {
            var weightDecay = Vector256.Create(WeightDecay);
            var eps = Vector256.Create(Eps);
            var negativeClr = Vector256.Create(NegativeClr);

            ref float pRef = ref MemoryMarshal.GetReference(param);
            ref float gRef = ref MemoryMarshal.GetReference(grad);
            ref float sumRef = ref MemoryMarshal.GetReference(state_sum);

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

                var sum = Vector256.FusedMultiplyAdd(g, g, Vector256.LoadUnsafe(ref sumRef, at));
                sum.StoreUnsafe(ref sumRef, at);

                var std = Vector256.Sqrt(sum) + eps;
                (p + negativeClr * g / std).StoreUnsafe(ref pRef, at);
            }

            RunPlain(param, grad, state_sum, i);
        }
    }
}
