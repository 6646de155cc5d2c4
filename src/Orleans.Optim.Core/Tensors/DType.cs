namespace Orleans.Optim.Tensors;

/// <summary>
/// Element type of a <see cref="Tensor"/>, named after torch's dtypes.
/// </summary>
public enum DType
{
    /// <summary><c>torch.float32</c>, storage class <c>torch.FloatStorage</c>.</summary>
    Float32,

    /// <summary><c>torch.float64</c>, storage class <c>torch.DoubleStorage</c>.</summary>
    Float64,

    /// <summary><c>torch.float16</c>, storage class <c>torch.HalfStorage</c>.</summary>
    Float16,

    /// <summary><c>torch.bfloat16</c>, storage class <c>torch.BFloat16Storage</c>.</summary>
    BFloat16,

    /// <summary><c>torch.int64</c>, storage class <c>torch.LongStorage</c>.</summary>
    Int64,

    /// <summary><c>torch.int32</c>, storage class <c>torch.IntStorage</c>.</summary>
    Int32,

    /// <summary><c>torch.int16</c>, storage class <c>torch.ShortStorage</c>.</summary>
    Int16,

    /// <summary><c>torch.int8</c>, storage class <c>torch.CharStorage</c>.</summary>
    Int8,

    /// <summary><c>torch.uint8</c>, storage class <c>torch.ByteStorage</c>.</summary>
    UInt8,

    /// <summary><c>torch.bool</c>, storage class <c>torch.BoolStorage</c>.</summary>
    Bool,
}

/// <summary>
/// Facts about each <see cref="DType"/>: element size, torch names and storage class names.
/// </summary>
public static class DTypes
{
    /// <summary>Returns the size of one element in bytes.</summary>
    public static int ElementSize(this DType dtype) => dtype switch
    {
        DType.Float32 or DType.Int32 => 4,
        DType.Float64 or DType.Int64 => 8,
        DType.Float16 or DType.BFloat16 or DType.Int16 => 2,
        DType.Int8 or DType.UInt8 or DType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
    };

    /// <summary>Returns whether the dtype is a floating-point type, as torch's <c>is_floating_point</c>.</summary>
    public static bool IsFloatingPoint(this DType dtype) =>
        dtype is DType.Float32 or DType.Float64 or DType.Float16 or DType.BFloat16;

    /// <summary>Returns torch's name of the dtype without the <c>torch.</c> prefix, such as <c>float32</c>.</summary>
    public static string TorchName(this DType dtype) => dtype switch
    {
        DType.Float32 => "float32",
        DType.Float64 => "float64",
        DType.Float16 => "float16",
        DType.BFloat16 => "bfloat16",
        DType.Int64 => "int64",
        DType.Int32 => "int32",
        DType.Int16 => "int16",
        DType.Int8 => "int8",
        DType.UInt8 => "uint8",
        DType.Bool => "bool",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
    };

    /// <summary>Returns the legacy storage class name that torch 1.13 pickles, such as <c>FloatStorage</c>.</summary>
    public static string StorageClassName(this DType dtype) => dtype switch
    {
        DType.Float32 => "FloatStorage",
        DType.Float64 => "DoubleStorage",
        DType.Float16 => "HalfStorage",
        DType.BFloat16 => "BFloat16Storage",
        DType.Int64 => "LongStorage",
        DType.Int32 => "IntStorage",
        DType.Int16 => "ShortStorage",
        DType.Int8 => "CharStorage",
        DType.UInt8 => "ByteStorage",
        DType.Bool => "BoolStorage",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
    };

    /// <summary>Finds the dtype of a torch storage class name such as <c>FloatStorage</c>.</summary>
    public static bool TryParseStorageClassName(string name, out DType dtype)
    {
        foreach (var candidate in Enum.GetValues<DType>())
        {
            if (candidate.StorageClassName() == name)
            {
                dtype = candidate;
                return true;
            }
        }

        dtype = default;
        return false;
    }

    /// <summary>Finds the dtype of a torch dtype name such as <c>float32</c>.</summary>
    public static bool TryParseTorchName(string name, out DType dtype)
    {
        foreach (var candidate in Enum.GetValues<DType>())
        {
            if (candidate.TorchName() == name)
            {
                dtype = candidate;
                return true;
            }
        }

        dtype = default;
        return false;
    }
}
