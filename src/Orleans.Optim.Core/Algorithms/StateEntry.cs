using Orleans.Optim.Tensors;

namespace Orleans.Optim.Algorithms;

/// <summary>
/// Kind of value a torch optimizer keeps in one state entry of a parameter.
/// </summary>
public enum StateValueKind
{
    /// <summary>Python <c>None</c>, such as SGD's <c>momentum_buffer</c> without momentum.</summary>
    None,

    /// <summary>A tensor with the parameter's shape; a shard keeps only its slice of it.</summary>
    ParamTensor,

    /// <summary>A 0-d tensor, such as Adam's <c>step</c> (float32 as torch 1.13 creates it).</summary>
    ScalarTensor,

    /// <summary>A Python <c>int</c>, such as RMSprop's <c>step</c>.</summary>
    Int,

    /// <summary>A Python <c>float</c>.</summary>
    Float,
}

/// <summary>
/// Declaration of one state entry an algorithm keeps per parameter: its torch name and kind.
/// </summary>
/// <param name="Name">Torch's entry name, such as <c>exp_avg</c>.</param>
/// <param name="Kind">Kind of the value.</param>
/// <param name="AllowsNone">Whether the entry may also be <c>None</c>, as SGD's <c>momentum_buffer</c>.</param>
public sealed record StateEntrySpec(string Name, StateValueKind Kind, bool AllowsNone = false);

/// <summary>
/// One state entry of a parameter, restricted to a shard's slice: a slice of a parameter-shaped tensor or a scalar
/// that every shard of the parameter keeps alike.
/// </summary>
public sealed class StateEntry
{
    private StateEntry(string name, StateValueKind kind, float[]? values, double number, DType scalarDType)
    {
        Name = name;
        Kind = kind;
        Values = values;
        Number = number;
        ScalarDType = scalarDType;
    }

    /// <summary>Torch's entry name, such as <c>exp_avg</c>.</summary>
    public string Name { get; }

    /// <summary>Kind of the current value.</summary>
    public StateValueKind Kind { get; private set; }

    /// <summary>This shard's slice of a <see cref="StateValueKind.ParamTensor"/> value; otherwise <see langword="null"/>.</summary>
    public float[]? Values { get; private set; }

    /// <summary>Value of a <see cref="StateValueKind.ScalarTensor"/>, <see cref="StateValueKind.Int"/> or <see cref="StateValueKind.Float"/> entry.</summary>
    public double Number { get; private set; }

    /// <summary>
    /// Dtype of a <see cref="StateValueKind.ScalarTensor"/>: float32 as torch creates it, or the dtype a loaded file had,
    /// because torch does not cast <c>step</c> on load.
    /// </summary>
    public DType ScalarDType { get; }

    /// <summary>Creates a <c>None</c> entry.</summary>
    public static StateEntry None(string name) => new(name, StateValueKind.None, null, 0, DType.Float32);

    /// <summary>Creates a slice entry over <paramref name="values"/> without copying.</summary>
    public static StateEntry Slice(string name, float[] values) => new(name, StateValueKind.ParamTensor, values, 0, DType.Float32);

    /// <summary>Creates a 0-d tensor entry.</summary>
    /// <exception cref="ArgumentException"><paramref name="dtype"/> is not float32, float64 or int64.</exception>
    public static StateEntry ScalarTensor(string name, double value, DType dtype = DType.Float32)
    {
        if (dtype is not (DType.Float32 or DType.Float64 or DType.Int64))
        {
            throw new ArgumentException($"A scalar state entry '{name}' must be float32, float64 or int64, not {dtype.TorchName()}.", nameof(dtype));
        }

        return new(name, StateValueKind.ScalarTensor, null, value, dtype);
    }

    /// <summary>Creates a Python <c>int</c> entry.</summary>
    public static StateEntry Int(string name, long value) => new(name, StateValueKind.Int, null, value, DType.Int64);

    /// <summary>Creates a Python <c>float</c> entry.</summary>
    public static StateEntry Float(string name, double value) => new(name, StateValueKind.Float, null, value, DType.Float64);

    /// <summary>Replaces a <c>None</c> value or a slice with <paramref name="values"/>, as SGD's first momentum step does.</summary>
    public void SetSlice(float[] values)
    {
        Kind = StateValueKind.ParamTensor;
        Values = values;
    }

    /// <summary>Adds one to a 0-d tensor or int entry in its own dtype, as torch's <c>step_t += 1</c>.</summary>
    public void Increment()
    {
        Number = Kind switch
        {
            StateValueKind.ScalarTensor when ScalarDType == DType.Float32 => (float)Number + 1f,
            StateValueKind.ScalarTensor or StateValueKind.Int or StateValueKind.Float => Number + 1,
            _ => throw new InvalidOperationException($"State entry '{Name}' of kind {Kind} cannot be incremented."),
        };
    }

    /// <summary>Sets the value of a scalar entry, rounding to float32 when the entry is a float32 tensor.</summary>
    public void SetNumber(double value)
    {
        Number = Kind == StateValueKind.ScalarTensor && ScalarDType == DType.Float32 ? (float)value : value;
    }

    /// <summary>Returns a deep copy.</summary>
    public StateEntry Clone() => new(Name, Kind, (float[]?)Values?.Clone(), Number, ScalarDType);
}
