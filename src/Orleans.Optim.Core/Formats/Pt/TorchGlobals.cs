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

    /// <summary><c>collections.Counter</c>, which <c>MultiStepLR</c> stores its milestones in.</summary>
    Counter,

    /// <summary><c>builtins.getattr</c>, valid only to take an anneal function of an inert <c>OneCycleLR</c>.</summary>
    Getattr,

    /// <summary><c>torch.optim.lr_scheduler.OneCycleLR</c>, valid only through NEWOBJ without arguments.</summary>
    OneCycleLRClass,

    /// <summary>A <c>torch.optim</c> optimizer class, valid only through NEWOBJ without arguments.</summary>
    OptimizerClass,

    /// <summary><c>collections.defaultdict</c>, valid only as <c>defaultdict(dict)</c>, the type of <c>optimizer.state</c>.</summary>
    DefaultDict,

    /// <summary><c>builtins.dict</c>, valid only as the argument of <c>defaultdict</c>.</summary>
    DictClass,
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

    /// <summary>The <c>collections.Counter</c> class.</summary>
    public static TorchGlobal Counter { get; } = new(TorchGlobalKind.Counter, "collections.Counter");

    /// <summary>The <c>builtins.getattr</c> function.</summary>
    public static TorchGlobal Getattr { get; } = new(TorchGlobalKind.Getattr, "builtins.getattr");

    /// <summary>The <c>torch.optim.lr_scheduler.OneCycleLR</c> class.</summary>
    public static TorchGlobal OneCycleLRClass { get; } = new(TorchGlobalKind.OneCycleLRClass, "torch.optim.lr_scheduler.OneCycleLR");

    /// <summary>The <c>collections.defaultdict</c> class.</summary>
    public static TorchGlobal DefaultDict { get; } = new(TorchGlobalKind.DefaultDict, "collections.defaultdict");

    /// <summary>The <c>builtins.dict</c> class.</summary>
    public static TorchGlobal DictClass { get; } = new(TorchGlobalKind.DictClass, "builtins.dict");

    /// <summary>
    /// Module and class name of each optimizer of torch 1.13. Torch 1.13's <c>OneCycleLR.state_dict()</c> contains
    /// the scheduler object itself, whose pickle contains its optimizer's class.
    /// </summary>
    private static readonly HashSet<(string Module, string Name)> OptimizerClasses =
    [
        ("torch.optim.adadelta", "Adadelta"), ("torch.optim.adagrad", "Adagrad"), ("torch.optim.adam", "Adam"),
        ("torch.optim.adamw", "AdamW"), ("torch.optim.sparse_adam", "SparseAdam"), ("torch.optim.adamax", "Adamax"),
        ("torch.optim.asgd", "ASGD"), ("torch.optim.sgd", "SGD"), ("torch.optim.radam", "RAdam"),
        ("torch.optim.rprop", "Rprop"), ("torch.optim.rmsprop", "RMSprop"), ("torch.optim.nadam", "NAdam"),
        ("torch.optim.lbfgs", "LBFGS"),
    ];

    /// <summary>Longest module or name that <see cref="Resolve"/> looks up, far above the longest allowed one.</summary>
    private const int MaxNameLength = 100;

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
        // Every allowed module and name is short, so a long one is rejected before it is hashed for a lookup.
        if (module.Length > MaxNameLength || name.Length > MaxNameLength)
        {
            throw Rejected(module, name, entryName, position);
        }

        switch (module, name)
        {
            case ("collections", "OrderedDict"):
                return OrderedDict;
            case ("torch._utils", "_rebuild_tensor_v2"):
                return RebuildTensorV2;
            case ("torch._utils", "_rebuild_parameter"):
                return RebuildParameter;
            case ("collections", "Counter"):
                return Counter;
            case ("collections", "defaultdict"):
                return DefaultDict;
            // Pickle protocols 0 to 2 name the module builtins as __builtin__, as Python 2 did.
            case ("builtins" or "__builtin__", "getattr"):
                return Getattr;
            case ("builtins" or "__builtin__", "dict"):
                return DictClass;
            case ("torch.optim.lr_scheduler", "OneCycleLR"):
                return OneCycleLRClass;
        }

        if (OptimizerClasses.Contains((module, name)))
        {
            return new TorchGlobal(TorchGlobalKind.OptimizerClass, module + "." + name);
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

        throw Rejected(module, name, entryName, position);
    }

    private static PtFormatException Rejected(string module, string name, string entryName, long position)
    {
        string allowed =
            $"Rejected global '{Printable(module)}.{Printable(name)}' in {entryName} at byte {position}: a .pt file may only reference collections.OrderedDict, " +
            "collections.Counter, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, torch storage classes, " +
            "and the classes that the anneal_func of a OneCycleLR state dict pickles. ";

        // torch.save(model) or torch.save(optimizer) pickles the object itself, the most common way to get here.
        string advice = module.StartsWith("torch.nn.", StringComparison.Ordinal) || module.StartsWith("torch.optim.", StringComparison.Ordinal)
            ? "The file looks like a whole PyTorch object saved with torch.save(model) or torch.save(optimizer). " +
              "Save model.state_dict() or optimizer.state_dict() instead, which this reader accepts."
            : "The file may be malicious. Do not load it with torch.load either.";
        return new(allowed + advice, entryName, position);
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

    /// <summary>Total size in bytes of the tensors created so far from views of this storage.</summary>
    public long CopiedBytes { get; set; }

    /// <inheritdoc/>
    public override string ToString() => $"storage '{Key}'";
}
