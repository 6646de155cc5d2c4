using System.Runtime.InteropServices;
using Orleans.Optim.Algorithms;

namespace Orleans.Optim.Cli.Bench;

/// <summary>
/// An optimizer's steps on one slice: first a bit check of each kernel path against the plain path from the same
/// starting state, then timed steps on one shared state that any path may take.
/// </summary>
/// <remarks>
/// Every path gives the same bits as the plain path (which <see cref="CheckBits"/> confirms), so the paths can take
/// turns on the shared state and the values evolve as if one path took every step.
/// </remarks>
public sealed class KernelWorkload
{
    private readonly OptimizerAlgorithm _algorithm;
    private readonly AlgorithmOptions _options;
    private readonly float[] _grad;
    private readonly float[] _param;
    private readonly SliceState _state;
    private float[]? _plainParam;
    private SliceState? _plainState;

    /// <summary>
    /// Takes one plain step from a fresh state, which fills the state with typical values and creates SGD's momentum
    /// buffer. Then takes one more plain step on a copy, the reference of the bit checks.
    /// </summary>
    /// <param name="algorithm">The optimizer algorithm.</param>
    /// <param name="options">Its hyperparameters.</param>
    /// <param name="param">Initial values; the workload takes ownership.</param>
    /// <param name="grad">The gradient of every step.</param>
    public KernelWorkload(OptimizerAlgorithm algorithm, AlgorithmOptions options, float[] param, float[] grad)
    {
        _algorithm = algorithm;
        _options = options;
        _grad = grad;
        _param = param;
        _state = algorithm.CreateState(options, param.Length);
        algorithm.Step(options, _state, _param, grad, KernelPath.Plain);

        _plainParam = (float[])_param.Clone();
        _plainState = _state.Clone();
        algorithm.Step(options, _plainState, _plainParam, grad, KernelPath.Plain);
    }

    /// <summary>Number of elements of the slice.</summary>
    public int Elements => _param.Length;

    /// <summary>
    /// Takes one step on <paramref name="path"/> from a copy of the starting state and returns whether its result has
    /// the same bits as the plain path's.
    /// </summary>
    /// <exception cref="InvalidOperationException"><see cref="EndBitChecks"/> has already run.</exception>
    public bool CheckBits(KernelPath path, KernelParallelism parallelism)
    {
        if (_plainParam is null || _plainState is null)
        {
            throw new InvalidOperationException("The bit checks have ended. Create a new workload to check bits again.");
        }

        // Frees the previous check's copies before this one allocates its own.
        GC.Collect();
        float[] param = (float[])_param.Clone();
        SliceState state = _state.Clone();
        _algorithm.Step(_options, state, param, _grad, path, parallelism);
        return SameBits(param, _plainParam) && SameState(state, _plainState);
    }

    /// <summary>Frees the reference and the copies of the bit checks. <see cref="CheckBits"/> cannot run after this.</summary>
    public void EndBitChecks()
    {
        _plainParam = null;
        _plainState = null;
        GC.Collect();
    }

    /// <summary>Takes one step on the shared state.</summary>
    /// <exception cref="InvalidOperationException"><see cref="EndBitChecks"/> has not run yet.</exception>
    public void Step(KernelPath path, KernelParallelism parallelism)
    {
        if (_plainParam is not null)
        {
            throw new InvalidOperationException("The timed steps must start after the bit checks have ended, because they change the starting state.");
        }

        _algorithm.Step(_options, _state, _param, _grad, path, parallelism);
    }

    private static bool SameBits(float[]? a, float[]? b) =>
        a is null || b is null
            ? a == b
            : MemoryMarshal.AsBytes(a.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(b.AsSpan()));

    private static bool SameState(SliceState a, SliceState b)
    {
        if (a.Entries.Count != b.Entries.Count)
        {
            return false;
        }

        for (int i = 0; i < a.Entries.Count; i++)
        {
            var x = a.Entries[i];
            var y = b.Entries[i];
            if (x.Name != y.Name || x.Kind != y.Kind || !SameBits(x.Values, y.Values)
                || BitConverter.DoubleToInt64Bits(x.Number) != BitConverter.DoubleToInt64Bits(y.Number))
            {
                return false;
            }
        }

        return true;
    }
}
