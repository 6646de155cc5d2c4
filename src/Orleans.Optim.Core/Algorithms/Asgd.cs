using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Orleans.Optim.Python;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Algorithms;

/// <summary>Hyperparameters of one ASGD param group.</summary>
/// <param name="Lr">Learning rate.</param>
/// <param name="LrIsInt">Whether <c>lr</c> is a Python int, which makes torch create <c>eta</c> as an int64 tensor.</param>
/// <param name="Lambd">Decay term.</param>
/// <param name="Alpha">Power for the <c>eta</c> update.</param>
/// <param name="T0">Step after which averaging starts.</param>
/// <param name="WeightDecay">L2 penalty.</param>
/// <param name="Maximize">Whether to maximize the objective.</param>
public sealed record AsgdOptions(double Lr, bool LrIsInt, double Lambd, double Alpha, double T0, double WeightDecay, bool Maximize)
    : AlgorithmOptions;

/// <summary>
/// Torch's <c>torch.optim.ASGD</c>, averaged stochastic gradient descent (PyTorch 1.13, <c>_single_tensor_asgd</c>),
/// with L2 weight decay added to the gradient and maximize.
/// </summary>
/// <remarks>
/// <para>
/// State per parameter, created at its first gradient: <c>step</c> (a 0-d float32 tensor), <c>eta</c> (a 0-d tensor,
/// <c>lr</c> at first), <c>mu</c> (a 0-d float32 tensor, 1.0 at first) and <c>ax</c>, the running average. Torch
/// creates <c>eta</c> with <c>torch.tensor(lr)</c>, so an int <c>lr</c> gives an int64 <c>eta</c> that truncates every
/// later value toward zero. Each step recomputes <c>eta</c> and <c>mu</c> in double and stores them narrowed to
/// float32.
/// </para>
/// <para>
/// Torch 1.13's foreach ASGD takes <c>eta</c> of a group's first parameter for all its parameters. This class always
/// uses each parameter's own <c>eta</c>, as the for-loop path does, so the two differ once parameters of a group have
/// different step counts.
/// </para>
/// </remarks>
public sealed class Asgd : OptimizerAlgorithm
{
    private static readonly StateEntrySpec[] s_entries =
    [
        new("step", StateValueKind.ScalarTensor),
        new("eta", StateValueKind.ScalarTensor),
        new("mu", StateValueKind.ScalarTensor),
        new("ax", StateValueKind.ParamTensor),
    ];

    /// <inheritdoc/>
    public override string Name => "ASGD";

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, object?>> Defaults { get; } =
    [
        new("lr", 1e-2),
        new("lambd", 1e-4),
        new("alpha", 0.75),
        new("t0", 1e6),
        new("weight_decay", 0L),
        new("foreach", null),
        new("maximize", false),
    ];

    /// <inheritdoc/>
    public override AlgorithmOptions ParseOptions(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true)
    {
        var reader = new GroupOptionsReader(group, groupIndex, checkRanges);
        var options = new AsgdOptions(
            Lr: reader.Number("lr"),
            LrIsInt: group["lr"] is long or int,
            Lambd: reader.Number("lambd"),
            Alpha: reader.Number("alpha"),
            T0: ReadT0(group, reader),
            WeightDecay: reader.Number("weight_decay"),
            Maximize: reader.Flag("maximize"));

        // NOTE: foreach=True runs the for-loop arithmetic here. Torch 1.13's foreach ASGD uses the first parameter's
        // eta for the whole group, so it differs once the parameters of a group have different step counts.
        reader.RequireForeach();

        if (!(options.Lr >= 0.0))
        {
            reader.RejectOutOfRange("lr", $"Invalid learning rate: {PythonValues.FormatFloat(options.Lr)}", "a value >= 0.0");
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
    public override SliceState CreateState(AlgorithmOptions options, int length)
    {
        var o = (AsgdOptions)options;
        return new([
            StateEntry.ScalarTensor("step", 0),
            o.LrIsInt ? StateEntry.ScalarTensor("eta", o.Lr, DType.Int64) : StateEntry.ScalarTensor("eta", o.Lr),
            StateEntry.ScalarTensor("mu", 1),
            StateEntry.Slice("ax", new float[length]),
        ]);
    }

    /// <inheritdoc/>
    /// <exception cref="ArithmeticException">
    /// Computing the next <c>eta</c> fails where Python raises ValueError, OverflowError or ZeroDivisionError, such as
    /// <c>1 + lambd * lr * step</c> below 0 with a fractional <c>alpha</c>. The state is left unchanged.
    /// </exception>
    public override void Step(AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path)
    {
        var o = (AsgdOptions)options;
        var step_t = state["step"];
        var eta = state["eta"];
        var mu = state["mu"];
        float[] ax = state.Tensor("ax");

        // step_t += 1, in the dtype of the step tensor. The state changes only after the next eta is known, so a
        // step that raises leaves it as it was.
        var nextStep = step_t.Clone();
        nextStep.Increment();
        double step = nextStep.Number;

        // new_eta = torch.tensor(lr / math.pow(1 + lambd * lr * step, alpha)), a float32 tensor that eta.copy_()
        // converts to eta's dtype. new_mu = torch.tensor(1 / max(1, step - t0)).
        float new_eta = (float)DivideAsPython(o.Lr, PowAsPython(1 + o.Lambd * o.Lr * step, o.Alpha, step), step);
        double difference = step - o.T0;
        float new_mu = (float)(1 / (difference > 1 ? difference : 1));

        var kernel = new AsgdKernel(
            Maximize: o.Maximize,
            ApplyWeightDecay: o.WeightDecay != 0,
            WeightDecay: (float)o.WeightDecay,
            Decay: (float)(1 - o.Lambd * eta.Number),
            NegativeEta: (float)-eta.Number,
            Averaging: mu.Number != 1,
            Mu: (float)mu.Number);

        step_t.SetNumber(step);
        if (path != KernelPath.Plain)
        {
            kernel.RunVectorized(param, grad, ax);
        }
        else
        {
            kernel.RunPlain(param, grad, ax, 0);
        }

        eta.SetNumber(eta.ScalarDType == DType.Int64 ? Math.Truncate(new_eta) : new_eta);
        mu.SetNumber(new_mu);
    }

    // Torch accepts t0=float('inf'), which never starts averaging. Every other value must be finite.
    private static double ReadT0(IReadOnlyDictionary<string, object?> group, GroupOptionsReader reader) =>
        group.TryGetValue("t0", out object? value) && value is double t0 && double.IsInfinity(t0) ? t0 : reader.Number("t0");

    // CPython's math.pow raises ValueError and OverflowError where C's pow returns NaN or infinity for finite inputs.
    private static double PowAsPython(double x, double y, double step)
    {
        double result = Math.Pow(x, y);
        if (double.IsFinite(x) && double.IsFinite(y) && !double.IsFinite(result))
        {
            bool domainError = double.IsNaN(result) || x == 0;
            string error = domainError ? "ValueError (math domain error)" : "OverflowError (math range error)";
            string fix = domainError ? "Use lambd >= 0 so that the base stays at least 1." : "Use a smaller lambd or alpha.";
            throw new ArithmeticException(
                $"ASGD step {PythonValues.FormatFloat(step)}: math.pow(1 + lambd * lr * step, alpha) = math.pow({PythonValues.FormatFloat(x)}, " +
                $"{PythonValues.FormatFloat(y)}) raises {error} in torch. {fix}");
        }

        return result;
    }

    private static double DivideAsPython(double dividend, double divisor, double step) =>
        divisor != 0
            ? dividend / divisor
            : throw new DivideByZeroException(
                $"ASGD step {PythonValues.FormatFloat(step)}: math.pow(1 + lambd * lr * step, alpha) is 0, so lr / math.pow(...) " +
                "raises ZeroDivisionError in torch. Use lambd >= 0 and alpha >= 0, so that the power is at least 1.");

    /// <summary>
    /// The per-element arithmetic of torch's for-loop ASGD. <c>add(x, alpha=a)</c> and <c>add_(x, alpha=a)</c> fuse
    /// multiply-add in torch's CPU kernels. <c>sub</c> is <c>add</c> with <c>alpha=-1</c>, which is exact either way.
    /// </summary>
    private readonly record struct AsgdKernel(
        bool Maximize,
        bool ApplyWeightDecay,
        float WeightDecay,
        float Decay,
        float NegativeEta,
        bool Averaging,
        float Mu)
    {
        public void RunPlain(Span<float> param, ReadOnlySpan<float> grad, Span<float> ax, int start)
        {
            for (int i = start; i < param.Length; i++)
            {
                // grad = -grad when maximizing, then grad = grad.add(param, alpha=weight_decay)
                float g = Maximize ? -grad[i] : grad[i];
                if (ApplyWeightDecay)
                {
                    g = MathF.FusedMultiplyAdd(param[i], WeightDecay, g);
                }

                // param.mul_(1 - lambd * eta.item()), then param.add_(grad, alpha=-eta.item())
                float p = MathF.FusedMultiplyAdd(g, NegativeEta, param[i] * Decay);
                param[i] = p;

                // ax.add_(param.sub(ax).mul(mu)) while mu != 1, else ax.copy_(param)
                ax[i] = Averaging ? ax[i] + (p - ax[i]) * Mu : p;
            }
        }

        public void RunVectorized(Span<float> param, ReadOnlySpan<float> grad, Span<float> ax)
        {
            var weightDecay = Vector256.Create(WeightDecay);
            var decay = Vector256.Create(Decay);
            var negativeEta = Vector256.Create(NegativeEta);
            var mu = Vector256.Create(Mu);

            ref float pRef = ref MemoryMarshal.GetReference(param);
            ref float gRef = ref MemoryMarshal.GetReference(grad);
            ref float axRef = ref MemoryMarshal.GetReference(ax);

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

                p = Vector256.FusedMultiplyAdd(g, negativeEta, p * decay);
                p.StoreUnsafe(ref pRef, at);

                if (Averaging)
                {
                    var a = Vector256.LoadUnsafe(ref axRef, at);
                    (a + (p - a) * mu).StoreUnsafe(ref axRef, at);
                }
                else
                {
                    p.StoreUnsafe(ref axRef, at);
                }
            }

            RunPlain(param, grad, ax, i);
        }
    }
}
