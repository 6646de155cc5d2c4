using System.Text;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Formats.Pt;

/// <summary>Kind of a class or function that a <c>.pt</c> pickle may reference.</summary>
internal enum TorchGlobalKind
{
    /// <summary><c>collections.OrderedDict</c>.</summary>
    OrderedDict,

    /// <summary><c>torch._utils._rebuild_tensor_v2</c>.</summary>
    RebuildTensorV2,

    /// <summary><c>torch._utils._rebuild_parameter</c>.</summary>
    RebuildParameter,

    /// <summary>A legacy storage class such as <c>torch.FloatStorage</c>, valid only inside a storage persistent id.</summary>
    StorageClass,
}

/// <summary>A class or function referenced by a GLOBAL opcode that passed the allow-list.</summary>
/// <remarks>A class, not a record, so that the pickle memo and the tree checks compare instances by reference.</remarks>
internal sealed class TorchGlobal
{
    private TorchGlobal(TorchGlobalKind kind, string qualifiedName, DType dtype = default)
    {
        Kind = kind;
        QualifiedName = qualifiedName;
        DType = dtype;
    }

    /// <summary>What the global is.</summary>
    public TorchGlobalKind Kind { get; }

    /// <summary>Module and name, such as <c>torch.FloatStorage</c>.</summary>
    public string QualifiedName { get; }

    /// <summary>Element type of a storage class, unused for other kinds.</summary>
    public DType DType { get; }

    /// <summary>The <c>collections.OrderedDict</c> class.</summary>
    public static TorchGlobal OrderedDict { get; } = new(TorchGlobalKind.OrderedDict, "collections.OrderedDict");

    /// <summary>The <c>torch._utils._rebuild_tensor_v2</c> function.</summary>
    public static TorchGlobal RebuildTensorV2 { get; } = new(TorchGlobalKind.RebuildTensorV2, "torch._utils._rebuild_tensor_v2");

    /// <summary>The <c>torch._utils._rebuild_parameter</c> function.</summary>
    public static TorchGlobal RebuildParameter { get; } = new(TorchGlobalKind.RebuildParameter, "torch._utils._rebuild_parameter");

    /// <summary>Storage class names of torch 1.13 that have no <see cref="Tensors.DType"/> here.</summary>
    private static readonly HashSet<string> UnsupportedStorageClasses =
    [
        "ComplexFloatStorage", "ComplexDoubleStorage", "QUInt8Storage", "QInt8Storage", "QInt32Storage",
        "QUInt4x2Storage", "QUInt2x4Storage", "UntypedStorage", "TypedStorage", "_UntypedStorage",
    ];

    /// <summary>Finds the allowed global named by <paramref name="module"/> and <paramref name="name"/>.</summary>
    /// <exception cref="PtFormatException">The global is not on the allow-list.</exception>
    public static TorchGlobal Resolve(string module, string name, string entryName, long position)
    {
        switch (module, name)
        {
            case ("collections", "OrderedDict"):
                return OrderedDict;
            case ("torch._utils", "_rebuild_tensor_v2"):
                return RebuildTensorV2;
            case ("torch._utils", "_rebuild_parameter"):
                return RebuildParameter;
        }

        if (module == "torch" && DTypes.TryParseStorageClassName(name, out var dtype))
        {
            return new TorchGlobal(TorchGlobalKind.StorageClass, "torch." + name, dtype);
        }

        if (module == "torch" && UnsupportedStorageClasses.Contains(name))
        {
            string supported = string.Join(", ", Enum.GetValues<DType>().Select(d => d.StorageClassName()));
            throw new PtFormatException(
                $"Unsupported storage class 'torch.{name}' in {entryName} at byte {position}: supported are {supported}. " +
                "Convert such tensors to a supported dtype, for example with tensor.float(), before torch.save.",
                entryName,
                position);
        }

        throw new PtFormatException(
            $"Rejected global '{Printable(module)}.{Printable(name)}' in {entryName} at byte {position}: a .pt file may only reference collections.OrderedDict, " +
            "torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and torch storage classes. " +
            "The file may be malicious. Do not load it with torch.load either.",
            entryName,
            position);
    }

    /// <summary>Returns text from a file that is safe to put in a message: at most 100 characters, control characters escaped.</summary>
    internal static string Printable(string text)
    {
        const int MaxLength = 100;
        var builder = new StringBuilder();
        foreach (char c in text.Length > MaxLength ? text[..MaxLength] : text)
        {
            if (char.IsControl(c))
            {
                builder.Append($"\\x{(int)c:x2}");
            }
            else
            {
                builder.Append(c);
            }
        }

        if (text.Length > MaxLength)
        {
            builder.Append("...");
        }

        return builder.ToString();
    }

    /// <inheritdoc/>
    public override string ToString() => QualifiedName;
}

/// <summary>A storage that a BINPERSID opcode referenced, after its record was found and its size checked.</summary>
internal sealed class StorageReference
{
    /// <summary>Creates a storage reference.</summary>
    public StorageReference(string key, DType dtype, long numElements, ZipEntryInfo entry)
    {
        Key = key;
        DType = dtype;
        NumElements = numElements;
        Entry = entry;
    }

    /// <summary>Storage key, the name of the record under <c>data/</c>.</summary>
    public string Key { get; }

    /// <summary>Element type declared by the storage class.</summary>
    public DType DType { get; }

    /// <summary>Declared number of elements.</summary>
    public long NumElements { get; }

    /// <summary>Declared size in bytes, which the loader checks is at most the record size.</summary>
    public long ByteCount => NumElements * DType.ElementSize();

    /// <summary>The zip entry that contains the storage bytes.</summary>
    public ZipEntryInfo Entry { get; }

    /// <inheritdoc/>
    public override string ToString() => $"storage '{Key}'";
}
