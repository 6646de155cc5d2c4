using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Orleans.Optim.Python;

namespace Orleans.Optim.Algorithms;

/// <summary>Hyperparameters of one RMSprop param group.</summary>
public sealed record RMSpropOptions(double Lr, double Momentum, double Alpha, double Eps, bool Centered, double WeightDecay, bool Maximize)
    : AlgorithmOptions;

/// <summary>
/// Torch's <c>torch.optim.RMSprop</c> (PyTorch 1.13, <c>_single_tensor_rmsprop</c>), with momentum, the centered
/// variant, weight decay and maximize.
/// </summary>
/// <remarks>
/// State per parameter, created at its first gradient: <c>step</c> (a Python int that <c>step()</c> increments and
/// the update never reads), <c>square_avg</c>, <c>momentum_buffer</c> when <c>momentum &gt; 0</c>, and
/// <c>grad_avg</c> when centered. Which entries exist is decided once, from the group's values at that first step.
/// </remarks>
public sealed class RMSprop : OptimizerAlgorithm
{
    private static readonly StateEntrySpec s_step = new("step", StateValueKind.Int);
    private static readonly StateEntrySpec s_squareAvg = new("square_avg", StateValueKind.ParamTensor);
    private static readonly StateEntrySpec s_momentumBuffer = new("momentum_buffer", StateValueKind.ParamTensor);
    private static readonly StateEntrySpec s_gradAvg = new("grad_avg", StateValueKind.ParamTensor);

    private static readonly StateEntrySpec[] s_plainEntries = [s_step, s_squareAvg];
    private static readonly StateEntrySpec[] s_momentumEntries = [s_step, s_squareAvg, s_momentumBuffer];
    private static readonly StateEntrySpec[] s_centeredEntries = [s_step, s_squareAvg, s_gradAvg];
    private static readonly StateEntrySpec[] s_momentumCenteredEntries = [s_step, s_squareAvg, s_momentumBuffer, s_gradAvg];

    /// <inheritdoc/>
    public override string Name => "RMSprop";

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, object?>> Defaults { get; } =
    [
        new("lr", 1e-2),
        new("momentum", 0L),
        new("alpha", 0.99),
        new("eps", 1e-8),
        new("centered", false),
        new("weight_decay", 0L),
        new("foreach", null),
        new("maximize", false),
        new("differentiable", false),
    ];

    /// <inheritdoc/>
    public override AlgorithmOptions ParseOptions(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true)
    {
        var reader = new GroupOptionsReader(group, groupIndex, checkRanges);
        var options = new RMSpropOptions(
            Lr: reader.Number("lr"),
            Momentum: reader.Number("momentum"),
            Alpha: reader.Number("alpha"),
            Eps: reader.Number("eps"),
            Centered: reader.Flag("centered"),
            WeightDecay: reader.Number("weight_decay"),
            Maximize: reader.Flag("maximize"));
        reader.RequireForeach();
        reader.RequireOff("differentiable", "it changes torch's arithmetic and is meant for autograd through the step");

        if (!(options.Lr >= 0.0))
        {
            reader.RejectOutOfRange("lr", $"Invalid learning rate: {PythonValues.FormatFloat(options.Lr)}", "a value >= 0.0");
        }

        if (!(options.Eps >= 0.0))
        {
            reader.RejectOutOfRange("eps", $"Invalid epsilon value: {PythonValues.FormatFloat(options.Eps)}", "a value >= 0.0");
        }

        if (!(options.Momentum >= 0.0))
        {
            reader.RejectOutOfRange("momentum", $"Invalid momentum value: {PythonValues.FormatFloat(options.Momentum)}", "a value >= 0.0");
        }

        if (!(options.WeightDecay >= 0.0))
        {
            reader.RejectOutOfRange("weight_decay", $"Invalid weight_decay value: {PythonValues.FormatFloat(options.WeightDecay)}", "a value >= 0.0");
        }

        if (!(options.Alpha >= 0.0))
        {
            reader.RejectOutOfRange("alpha", $"Invalid alpha value: {PythonValues.FormatFloat(options.Alpha)}", "a value >= 0.0");
        }

        return options;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<StateEntrySpec> StateEntries(AlgorithmOptions options)
    {
        // NOTE: torch keeps momentum_buffer and grad_avg after a group turns momentum or centered off, but this list
        // follows the current options, so load_state_dict rejects such a state dict as having an unexpected entry.
        var o = (RMSpropOptions)options;
        return (o.Momentum > 0, o.Centered) switch
        {
            (false, false) => s_plainEntries,
            (true, false) => s_momentumEntries,
            (false, true) => s_centeredEntries,
            (true, true) => s_momentumCenteredEntries,
        };
    }

    /// <inheritdoc/>
    public override SliceState CreateState(AlgorithmOptions options, int length) => CreateZeroState(options, length);

    /// <inheritdoc/>
    public override void Step(AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path)
    {
        var o = (RMSpropOptions)options;
        bool hasMomentum = o.Momentum > 0;

        // The current options can need a buffer that the state lacks because it was created under other options.
        // Torch raises KeyError there, and state.Tensor raises KeyNotFoundException.
        float[] square_avg = state.Tensor("square_avg");
        float[]? momentum_buffer = hasMomentum ? state.Tensor("momentum_buffer") : null;
        float[]? grad_avg = o.Centered ? state.Tensor("grad_avg") : null;

        // state['step'] += 1 in step(), before the update.
        state["step"].Increment();

        var kernel = new RMSpropKernel(
            Maximize: o.Maximize,
            ApplyWeightDecay: o.WeightDecay != 0,
            WeightDecay: (float)o.WeightDecay,
            Alpha: (float)o.Alpha,
            OneMinusAlpha: (float)(1 - o.Alpha),
            Centered: o.Centered,
            Eps: (float)o.Eps,
            HasMomentum: hasMomentum,
            Momentum: (float)o.Momentum,
            NegativeLr: (float)-o.Lr);

        if (path != KernelPath.Plain)
        {
            kernel.RunVectorized(param, grad, square_avg, momentum_buffer, grad_avg);
        }
        else
        {
            kernel.RunPlain(param, grad, square_avg, momentum_buffer, grad_avg, 0);
        }
    }

    /// <summary>
    /// The per-element arithmetic of torch's RMSprop. Torch's CPU kernels fuse multiply-add in <c>add_(x, alpha=a)</c>
    /// and <c>addcmul</c> but not in <c>addcdiv_</c>.
    /// </summary>
    private readonly record struct RMSpropKernel(
        bool Maximize,
        bool ApplyWeightDecay,
        float WeightDecay,
        float Alpha,
        float OneMinusAlpha,
        bool Centered,
        float Eps,
        bool HasMomentum,
        float Momentum,
        float NegativeLr)
    {
        public void RunPlain(Span<float> param, ReadOnlySpan<float> grad, Span<float> square_avg, Span<float> momentum_buffer, Span<float> grad_avg, int start)
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

                // square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                float sq = MathF.FusedMultiplyAdd(OneMinusAlpha * g, g, square_avg[i] * Alpha);
                square_avg[i] = sq;

                float avg;
                if (Centered)
                {
                    // grad_avg.mul_(alpha).add_(grad, alpha=1 - alpha)
                    float ga = MathF.FusedMultiplyAdd(g, OneMinusAlpha, grad_avg[i] * Alpha);
                    grad_avg[i] = ga;

                    // avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_(), where value * grad_avg is exact.
                    avg = MathF.Sqrt(MathF.FusedMultiplyAdd(-ga, ga, sq));
                }
                else
                {
                    // avg = square_avg.sqrt()
                    avg = MathF.Sqrt(sq);
                }

                // avg = avg.add_(eps)
                avg += Eps;

                if (HasMomentum)
                {
                    // buf.mul_(momentum).addcdiv_(grad, avg), value=1; then param.add_(buf, alpha=-lr)
                    float buf = momentum_buffer[i] * Momentum + g / avg;
                    momentum_buffer[i] = buf;
                    param[i] = MathF.FusedMultiplyAdd(buf, NegativeLr, param[i]);
                }
                else
                {
                    // param.addcdiv_(grad, avg, value=-lr)
                    param[i] += NegativeLr * g / avg;
                }
            }
        }

        public void RunVectorized(Span<float> param, ReadOnlySpan<float> grad, Span<float> square_avg, Span<float> momentum_buffer, Span<float> grad_avg)
        {
            var weightDecay = Vector256.Create(WeightDecay);
            var alpha = Vector256.Create(Alpha);
            var oneMinusAlpha = Vector256.Create(OneMinusAlpha);
            var eps = Vector256.Create(Eps);
            var momentum = Vector256.Create(Momentum);
            var negativeLr = Vector256.Create(NegativeLr);

            ref float pRef = ref MemoryMarshal.GetReference(param);
            ref float gRef = ref MemoryMarshal.GetReference(grad);
            ref float sqRef = ref MemoryMarshal.GetReference(square_avg);
            ref float bufRef = ref MemoryMarshal.GetReference(momentum_buffer);
            ref float gaRef = ref MemoryMarshal.GetReference(grad_avg);

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

                var sq = Vector256.FusedMultiplyAdd(oneMinusAlpha * g, g, Vector256.LoadUnsafe(ref sqRef, at) * alpha);
                sq.StoreUnsafe(ref sqRef, at);

                Vector256<float> avg;
                if (Centered)
                {
                    var ga = Vector256.FusedMultiplyAdd(g, oneMinusAlpha, Vector256.LoadUnsafe(ref gaRef, at) * alpha);
                    ga.StoreUnsafe(ref gaRef, at);
                    avg = Vector256.Sqrt(Vector256.FusedMultiplyAdd(-ga, ga, sq));
                }
                else
                {
                    avg = Vector256.Sqrt(sq);
                }

                avg += eps;

                if (HasMomentum)
                {
                    var buf = Vector256.LoadUnsafe(ref bufRef, at) * momentum + g / avg;
                    buf.StoreUnsafe(ref bufRef, at);
                    Vector256.FusedMultiplyAdd(buf, negativeLr, p).StoreUnsafe(ref pRef, at);
                }
                else
                {
                    (p + negativeLr * g / avg).StoreUnsafe(ref pRef, at);
                }
            }

            RunPlain(param, grad, square_avg, momentum_buffer, grad_avg, i);
        }
    }
}
