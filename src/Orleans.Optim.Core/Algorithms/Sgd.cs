using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Orleans.Optim.Algorithms;

/// <summary>Hyperparameters of one SGD param group.</summary>
public sealed record SgdOptions(double Lr, double Momentum, double Dampening, double WeightDecay, bool Nesterov, bool Maximize)
    : AlgorithmOptions;

/// <summary>
/// Torch's <c>torch.optim.SGD</c> (PyTorch 1.13, <c>_single_tensor_sgd</c>), with momentum, dampening, Nesterov momentum,
/// weight decay and maximize.
/// </summary>
/// <remarks>
/// State per parameter: <c>momentum_buffer</c>, which stays <c>None</c> while <c>momentum == 0</c>; the first step with
/// momentum copies the gradient into it and ignores dampening.
/// </remarks>
public sealed class Sgd : OptimizerAlgorithm
{
    private static readonly StateEntrySpec[] s_entries = [new("momentum_buffer", StateValueKind.ParamTensor, AllowsNone: true)];

    /// <inheritdoc/>
    public override string Name => "SGD";

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, object?>> Defaults { get; } =
    [
        new("lr", Required),
        new("momentum", 0L),
        new("dampening", 0L),
        new("weight_decay", 0L),
        new("nesterov", false),
        new("maximize", false),
        new("foreach", null),
        new("differentiable", false),
    ];

    /// <inheritdoc/>
    public override AlgorithmOptions ParseOptions(IReadOnlyDictionary<string, object?> group, int groupIndex, bool checkRanges = true)
    {
        var reader = new GroupOptionsReader(group, groupIndex, checkRanges);
        var options = new SgdOptions(
            Lr: reader.Number("lr"),
            Momentum: reader.Number("momentum"),
            Dampening: reader.Number("dampening"),
            WeightDecay: reader.Number("weight_decay"),
            Nesterov: reader.Flag("nesterov"),
            Maximize: reader.Flag("maximize"));
        reader.RequireForeach();
        reader.RequireOff("differentiable", "it changes torch's arithmetic and is meant for autograd through the step");

        if (options.Lr < 0.0)
        {
            reader.RejectOutOfRange("lr", $"Invalid learning rate: {Python.PythonValues.FormatFloat(options.Lr)}", "a value >= 0.0");
        }

        if (options.Momentum < 0.0)
        {
            reader.RejectOutOfRange("momentum", $"Invalid momentum value: {Python.PythonValues.FormatFloat(options.Momentum)}", "a value >= 0.0");
        }

        if (options.WeightDecay < 0.0)
        {
            reader.RejectOutOfRange("weight_decay", $"Invalid weight_decay value: {Python.PythonValues.FormatFloat(options.WeightDecay)}", "a value >= 0.0");
        }

        if (options.Nesterov && (options.Momentum <= 0 || options.Dampening != 0))
        {
            reader.RejectOutOfRange("nesterov", "Nesterov momentum requires a momentum and zero dampening", "momentum > 0 and dampening == 0 when nesterov=True");
        }

        return options;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<StateEntrySpec> StateEntries(AlgorithmOptions options) => s_entries;

    /// <inheritdoc/>
    public override SliceState CreateState(AlgorithmOptions options, int length) => new([StateEntry.None("momentum_buffer")]);

    /// <inheritdoc/>
    public override void Step(AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path) =>
        Step(options, state, param, grad, path, KernelParallelism.None);

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The gradient or the momentum buffer has a different length than the slice.</exception>
    public override void Step(
        AlgorithmOptions options, SliceState state, Span<float> param, ReadOnlySpan<float> grad, KernelPath path, KernelParallelism parallelism)
    {
        var o = (SgdOptions)options;
        var momentumBuffer = state["momentum_buffer"];
        KernelChecks.RequireGradientLength(param, grad);

        // A momentum buffer is created (as a copy of d_p) only once momentum is non-zero; until then it stays None.
        bool hasMomentum = o.Momentum != 0;
        bool firstMomentumStep = hasMomentum && momentumBuffer.Kind == StateValueKind.None;
        if (firstMomentumStep)
        {
            // The first momentum step writes every element of the buffer, so it need not be zeroed.
            momentumBuffer.SetSlice(GC.AllocateUninitializedArray<float>(param.Length));
        }

        float[]? buffer = hasMomentum ? momentumBuffer.Values : null;
        if (buffer is not null)
        {
            KernelChecks.RequireStateLength(param, buffer, "momentum_buffer");
        }

        var kernel = new SgdKernel(
            WeightDecay: (float)o.WeightDecay,
            ApplyWeightDecay: o.WeightDecay != 0,
            Momentum: (float)o.Momentum,
            OneMinusDampening: (float)(1 - o.Dampening),
            HasMomentum: hasMomentum,
            FirstMomentumStep: firstMomentumStep,
            Nesterov: o.Nesterov,
            Maximize: o.Maximize,
            NegativeLr: (float)-o.Lr);

        int chunkCount = parallelism.ChunkCount(param.Length);
        if (chunkCount > 1)
        {
            RunChunks(kernel, path, param, grad, buffer, chunkCount);
        }
        else
        {
            kernel.Run(path, param, grad, buffer);
        }
    }

    // A separate method, so that a step on one thread does not allocate the closure.
    private static void RunChunks(SgdKernel kernel, KernelPath path, Span<float> param, ReadOnlySpan<float> grad, float[]? buffer, int chunkCount) =>
        KernelParallelism.RunChunks(param, grad, chunkCount, (start, paramChunk, gradChunk) =>
            kernel.Run(path, paramChunk, gradChunk, buffer is null ? default : buffer.AsSpan(start, paramChunk.Length)));

    /// <summary>
    /// The per-element arithmetic of torch's SGD. <c>add(x, alpha=a)</c> is fused multiply-add in torch's CPU kernels.
    /// </summary>
    private readonly record struct SgdKernel(
        float WeightDecay,
        bool ApplyWeightDecay,
        float Momentum,
        float OneMinusDampening,
        bool HasMomentum,
        bool FirstMomentumStep,
        bool Nesterov,
        bool Maximize,
        float NegativeLr)
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void RunPlain(Span<float> param, ReadOnlySpan<float> grad, Span<float> buffer, int start)
        {
            for (int i = start; i < param.Length; i++)
            {
                // d_p = grad, negated when maximizing.
                float d_p = Maximize ? -grad[i] : grad[i];

                // d_p = d_p.add(param, alpha=weight_decay)
                if (ApplyWeightDecay)
                {
                    d_p = MathF.FusedMultiplyAdd(param[i], WeightDecay, d_p);
                }

                if (HasMomentum)
                {
                    // buf = clone(d_p) on the first step, else buf.mul_(momentum).add_(d_p, alpha=1 - dampening)
                    float buf = FirstMomentumStep ? d_p : MathF.FusedMultiplyAdd(d_p, OneMinusDampening, buffer[i] * Momentum);
                    buffer[i] = buf;

                    // d_p = d_p.add(buf, alpha=momentum) with Nesterov, else d_p = buf
                    d_p = Nesterov ? MathF.FusedMultiplyAdd(buf, Momentum, d_p) : buf;
                }

                // param.add_(d_p, alpha=-lr)
                param[i] = MathF.FusedMultiplyAdd(d_p, NegativeLr, param[i]);
            }
        }

        // The kernels skip tiered compilation, so every step runs the same fully optimized code from the first call
        // on, and the benchmark times the code that a long-running shard runs.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(KernelPath path, Span<float> param, ReadOnlySpan<float> grad, Span<float> buffer)
        {
            int i = 0;
            if (path == KernelPath.Vectorized512 && Vector512.IsHardwareAccelerated)
            {
                i = RunVector512(param, grad, buffer);
            }

            if (path != KernelPath.Plain)
            {
                i = RunVector256(param, grad, buffer, i);
            }

            RunPlain(param, grad, buffer, i);
        }

        // Returns the index of the first element left for the scalar tail.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private int RunVector256(Span<float> param, ReadOnlySpan<float> grad, Span<float> buffer, int start)
        {
            var weightDecay = Vector256.Create(WeightDecay);
            var momentum = Vector256.Create(Momentum);
            var oneMinusDampening = Vector256.Create(OneMinusDampening);
            var negativeLr = Vector256.Create(NegativeLr);

            ref float p = ref MemoryMarshal.GetReference(param);
            ref float g = ref MemoryMarshal.GetReference(grad);
            ref float b = ref MemoryMarshal.GetReference(buffer);

            int width = Vector256<float>.Count;
            int i = start;
            for (; i <= param.Length - width; i += width)
            {
                var p_i = Vector256.LoadUnsafe(ref p, (nuint)i);
                var d_p = Vector256.LoadUnsafe(ref g, (nuint)i);
                if (Maximize)
                {
                    d_p = -d_p;
                }

                if (ApplyWeightDecay)
                {
                    d_p = Vector256.FusedMultiplyAdd(p_i, weightDecay, d_p);
                }

                if (HasMomentum)
                {
                    var buf = FirstMomentumStep
                        ? d_p
                        : Vector256.FusedMultiplyAdd(d_p, oneMinusDampening, Vector256.LoadUnsafe(ref b, (nuint)i) * momentum);
                    buf.StoreUnsafe(ref b, (nuint)i);
                    d_p = Nesterov ? Vector256.FusedMultiplyAdd(buf, momentum, d_p) : buf;
                }

                Vector256.FusedMultiplyAdd(d_p, negativeLr, p_i).StoreUnsafe(ref p, (nuint)i);
            }

            return i;
        }

        // The 256-bit loop in 512-bit vectors; FMA rounds correctly at every width, so the bits are the same.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private int RunVector512(Span<float> param, ReadOnlySpan<float> grad, Span<float> buffer)
        {
            var weightDecay = Vector512.Create(WeightDecay);
            var momentum = Vector512.Create(Momentum);
            var oneMinusDampening = Vector512.Create(OneMinusDampening);
            var negativeLr = Vector512.Create(NegativeLr);

            ref float p = ref MemoryMarshal.GetReference(param);
            ref float g = ref MemoryMarshal.GetReference(grad);
            ref float b = ref MemoryMarshal.GetReference(buffer);

            int width = Vector512<float>.Count;
            int i = 0;
            for (; i <= param.Length - width; i += width)
            {
                var p_i = Vector512.LoadUnsafe(ref p, (nuint)i);
                var d_p = Vector512.LoadUnsafe(ref g, (nuint)i);
                if (Maximize)
                {
                    d_p = -d_p;
                }

                if (ApplyWeightDecay)
                {
                    d_p = Vector512.FusedMultiplyAdd(p_i, weightDecay, d_p);
                }

                if (HasMomentum)
                {
                    var buf = FirstMomentumStep
                        ? d_p
                        : Vector512.FusedMultiplyAdd(d_p, oneMinusDampening, Vector512.LoadUnsafe(ref b, (nuint)i) * momentum);
                    buf.StoreUnsafe(ref b, (nuint)i);
                    d_p = Nesterov ? Vector512.FusedMultiplyAdd(buf, momentum, d_p) : buf;
                }

                Vector512.FusedMultiplyAdd(d_p, negativeLr, p_i).StoreUnsafe(ref p, (nuint)i);
            }

            return i;
        }
    }
}
