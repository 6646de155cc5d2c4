using System.Text;
using Orleans.Optim.Formats.Pt;
using static Orleans.Optim.Tests.Pt.PtArchiveBuilder;

namespace Orleans.Optim.Tests.Pt;

/// <summary>
/// Every way a pickle can reach a class or function besides GLOBAL: INST, OBJ, STACK_GLOBAL on memoized strings,
/// memoized globals called again, REDUCE and BUILD on other objects, and persistent ids. Each is rejected before
/// anything is built from it.
/// </summary>
public sealed class PtGlobalPathTests
{
    private const string PickleEntry = "archive/data.pkl";

    public static TheoryData<string, string> ForbiddenGlobals => new()
    {
        { "os", "system" },
        { "builtins", "eval" },
        { "subprocess", "Popen" },
        { "__main__", "Payload" },
    };

    [Theory]
    [MemberData(nameof(ForbiddenGlobals))]
    public void InstOfForbiddenClassRejectedByName(string module, string name)
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("x").Op(PickleOpcodes.Mark).Str("echo pwned");
        int instAt = pickle.Position;
        byte[] bytes = pickle.Op(PickleOpcodes.Inst, Encoding.UTF8.GetBytes(module + "\n" + name + "\n")).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(bytes);

        Assert.StartsWith($"Rejected global '{module}.{name}' in {PickleEntry} at byte {instAt}:", error.Message);
        Assert.Equal(instAt, error.Position);
    }

    [Fact]
    public void InstOfAllowedClassRejected()
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("x").Op(PickleOpcodes.Mark);
        int instAt = pickle.Position;
        byte[] bytes = pickle.Op(PickleOpcodes.Inst, "collections\nOrderedDict\n"u8.ToArray()).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(bytes);

        Assert.StartsWith(
            $"Unsupported pickle opcode INST (0x69) in {PickleEntry} at byte {instAt} creates collections.OrderedDict, but torch.save never writes INST.",
            error.Message);
    }

    [Fact]
    public void ObjOfAllowedClassRejected()
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("x").Op(PickleOpcodes.Mark).Global("collections", "OrderedDict");
        int objAt = pickle.Position;
        byte[] bytes = pickle.Op((byte)'o').Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(bytes);

        Assert.StartsWith($"Unsupported pickle opcode OBJ (0x6f) in {PickleEntry} at byte {objAt}.", error.Message);
    }

    [Fact]
    public void StackGlobalOfMemoizedStringsRejectedByName()
    {
        // The names are memoized first and fetched back with BINGET, as a pickle that hides them would do.
        var pickle = PickleBuilder.Start(4)
            .Str("os").Op(PickleOpcodes.BinPut, 0).Op(PickleOpcodes.Pop)
            .Str("system").Op(PickleOpcodes.BinPut, 1).Op(PickleOpcodes.Pop)
            .Op(PickleOpcodes.BinGet, 0).Op(PickleOpcodes.BinGet, 1);
        int globalAt = pickle.Position;
        byte[] bytes = pickle.Op(PickleOpcodes.StackGlobal).Str("id").Op(PickleOpcodes.Tuple1).Op(PickleOpcodes.Reduce).Stop();

        var error = ReadFails(bytes);

        Assert.StartsWith($"Rejected global 'os.system' in {PickleEntry} at byte {globalAt}:", error.Message);
    }

    [Fact]
    public void StackGlobalOfNonStringsRejected()
    {
        var pickle = PickleBuilder.Start(4).Int(1).Int(2);
        int globalAt = pickle.Position;
        byte[] bytes = pickle.Op(PickleOpcodes.StackGlobal).Stop();

        var error = ReadFails(bytes);

        Assert.StartsWith($"STACK_GLOBAL in {PickleEntry} at byte {globalAt} needs a module name and a global name as strings.", error.Message);
    }

    [Fact]
    public void LongGlobalNameRejectedShortened()
    {
        string name = new('x', 100_000);
        byte[] bytes = PickleBuilder.Start(4).Str("torch").Str(name).Op(PickleOpcodes.StackGlobal).Stop();

        var error = ReadFails(bytes);

        Assert.StartsWith($"Rejected global 'torch.{new string('x', 100)}...' in {PickleEntry}", error.Message);
        Assert.True(error.Message.Length < 1000, $"The message has {error.Message.Length} characters.");
    }

    [Fact]
    public void MemoizedOrderedDictCheckedOnEachCall()
    {
        // The first call is valid. The second fetches the same class from the memo and passes an argument.
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict)
            .Str("a").Global("collections", "OrderedDict").Op(PickleOpcodes.BinPut, 0).Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.Reduce)
            .Op(PickleOpcodes.SetItem)
            .Str("b").Op(PickleOpcodes.BinGet, 0).Str("items").Op(PickleOpcodes.Tuple1);
        int reduceAt = pickle.Position;
        byte[] bytes = pickle.Op(PickleOpcodes.Reduce).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(bytes);

        Assert.StartsWith($"{PickleEntry} at byte {reduceAt} calls collections.OrderedDict with 1 arguments", error.Message);
    }

    [Fact]
    public void MemoizedGetattrCheckedOnEachCall()
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict)
            .Global("builtins", "getattr").Op(PickleOpcodes.BinPut, 0).Op(PickleOpcodes.Pop)
            .Str("f").Op(PickleOpcodes.BinGet, 0).Str("text").Str("upper").Op(PickleOpcodes.Tuple2);
        int reduceAt = pickle.Position;
        byte[] bytes = pickle.Op(PickleOpcodes.Reduce).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(bytes);

        Assert.StartsWith($"{PickleEntry} at byte {reduceAt} calls builtins.getattr with a tuple of 2 items", error.Message);
    }

    [Fact]
    public void MemoizedRebuildFunctionCheckedOnEachCall()
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict)
            .Global("torch._utils", "_rebuild_tensor_v2").Op(PickleOpcodes.BinPut, 0).Op(PickleOpcodes.Pop)
            .Str("t").Tensor("0", 1, [1]).Op(PickleOpcodes.SetItem)
            .Str("u").Op(PickleOpcodes.BinGet, 0).Str("storage").Op(PickleOpcodes.Tuple1);
        int reduceAt = pickle.Position;
        byte[] bytes = pickle.Op(PickleOpcodes.Reduce).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(bytes, ("0", Floats(1f)));

        Assert.StartsWith(
            $"torch._utils._rebuild_tensor_v2 in {PickleEntry} at byte {reduceAt} gets 1 arguments instead of 6 (7 with tensor metadata).",
            error.Message);
    }

    public static TheoryData<string, string> NonCallables => new()
    {
        { "string", "'os.system'" },
        { "dict", "a dict of 0 items" },
        { "list", "a list of 0 items" },
        { "None", "None" },
        { "int", "7" },
        { "tensor", "a Tensor[float32, [1]]" },
        { "scheduler object", "a torch.optim.lr_scheduler.OneCycleLR object" },
    };

    private static readonly Dictionary<string, Func<PickleBuilder, PickleBuilder>> NonCallableBuilders = new()
    {
        ["string"] = p => p.Str("os.system"),
        ["dict"] = p => p.Op(PickleOpcodes.EmptyDict),
        ["list"] = p => p.Op(PickleOpcodes.EmptyList),
        ["None"] = p => p.Op(PickleOpcodes.None),
        ["int"] = p => p.Int(7),
        ["tensor"] = p => p.Tensor("0", 1, [1]),
        ["scheduler object"] = p => p.Global("torch.optim.lr_scheduler", "OneCycleLR").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.NewObj),
    };

    [Theory]
    [MemberData(nameof(NonCallables))]
    public void ReduceOnNonCallableRejected(string label, string description)
    {
        var pickle = NonCallableBuilders[label](PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str(label)).Op(PickleOpcodes.EmptyTuple);
        int reduceAt = pickle.Position;
        byte[] bytes = pickle.Op(PickleOpcodes.Reduce).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(bytes, ("0", Floats(1f)));

        Assert.StartsWith($"REDUCE in {PickleEntry} at byte {reduceAt} calls {description}, which is not a class or function.", error.Message);
    }

    public static TheoryData<string, string> BuildTargets => new()
    {
        { "string", "'text'" },
        { "dict", "a dict of 0 items" },
        { "tuple", "a tuple of 0 items" },
        { "class", "collections.OrderedDict" },
        { "tensor", "a Tensor[float32, [1]]" },
        { "counter", "a Counter of 0 items" },
    };

    private static readonly Dictionary<string, Func<PickleBuilder, PickleBuilder>> BuildTargetBuilders = new()
    {
        ["string"] = p => p.Str("text"),
        ["dict"] = p => p.Op(PickleOpcodes.EmptyDict),
        ["tuple"] = p => p.Op(PickleOpcodes.EmptyTuple),
        ["class"] = p => p.Global("collections", "OrderedDict"),
        ["tensor"] = p => p.Tensor("0", 1, [1]),
        ["counter"] = p => p.Global("collections", "Counter").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.Reduce),
    };

    [Theory]
    [MemberData(nameof(BuildTargets))]
    public void BuildOnUnexpectedObjectRejected(string label, string description)
    {
        var pickle = BuildTargetBuilders[label](PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str(label))
            .Op(PickleOpcodes.EmptyDict).Str("__setstate__").Op(PickleOpcodes.None).Op(PickleOpcodes.SetItem);
        int buildAt = pickle.Position;
        byte[] bytes = pickle.Op(PickleOpcodes.Build).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(bytes, ("0", Floats(1f)));

        Assert.StartsWith(
            $"BUILD in {PickleEntry} at byte {buildAt} sets the state of {description}, but a .pt file may only set attributes of an OrderedDict",
            error.Message);
    }

    public static TheoryData<string, string> PersistentIds => new()
    {
        { "text", "The persistent id '0' is not a torch storage reference" },
        { "None", "The persistent id None is not a torch storage reference" },
        { "four items", "The persistent id a tuple of 4 items is not a torch storage reference" },
        { "other tag", "The persistent id a tuple of 5 items is not a torch storage reference" },
        { "class not a storage", "The persistent id a tuple of 5 items is not a torch storage reference" },
        { "int key", "The persistent id a tuple of 5 items is not a torch storage reference" },
        { "string size", "The persistent id a tuple of 5 items is not a torch storage reference" },
        { "negative size", "Storage '0' declares -1 elements, which is not a valid size." },
        { "size overflows bytes", "Storage '0' declares 2305843009213693952 elements, which is not a valid size." },
        { "long key", "Storage key '7777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777...' has 101 characters" },
        { "key reused as another dtype", "Storage '0' is declared as 1 float64 elements, but earlier as 1 float32 elements." },
        { "missing record", "The zip archive has no entry 'archive/data/9'" },
    };

    private static readonly Dictionary<string, Func<PickleBuilder, PickleBuilder>> PersistentIdBuilders = new()
    {
        ["text"] = p => p.Op(PickleOpcodes.PersId, "0\n"u8.ToArray()),
        ["None"] = p => p.Op(PickleOpcodes.None).Op(PickleOpcodes.BinPersId),
        ["four items"] = p => StorageId(p, "storage", "FloatStorage", "0", "cpu", null),
        ["other tag"] = p => StorageId(p, "module", "FloatStorage", "0", "cpu", 1),
        ["class not a storage"] = p => p.Op(PickleOpcodes.Mark).Str("storage").Global("collections", "OrderedDict").Str("0").Str("cpu").Int(1).Op(PickleOpcodes.Tuple).Op(PickleOpcodes.BinPersId),
        ["int key"] = p => p.Op(PickleOpcodes.Mark).Str("storage").Global("torch", "FloatStorage").Int(0).Str("cpu").Int(1).Op(PickleOpcodes.Tuple).Op(PickleOpcodes.BinPersId),
        ["string size"] = p => p.Op(PickleOpcodes.Mark).Str("storage").Global("torch", "FloatStorage").Str("0").Str("cpu").Str("1").Op(PickleOpcodes.Tuple).Op(PickleOpcodes.BinPersId),
        ["negative size"] = p => StorageId(p, "storage", "FloatStorage", "0", "cpu", -1),
        ["size overflows bytes"] = p => StorageId(p, "storage", "DoubleStorage", "0", "cpu", 1L << 61),
        ["long key"] = p => StorageId(p, "storage", "FloatStorage", new string('7', 101), "cpu", 1),
        ["key reused as another dtype"] = p => StorageId(StorageId(p, "storage", "FloatStorage", "0", "cpu", 1).Op(PickleOpcodes.Pop), "storage", "DoubleStorage", "0", "cpu", 1),
        ["missing record"] = p => StorageId(p, "storage", "FloatStorage", "9", "cpu", 1),
    };

    [Theory]
    [MemberData(nameof(PersistentIds))]
    public void UnexpectedPersistentIdRejected(string label, string expected)
    {
        byte[] bytes = PersistentIdBuilders[label](PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str(label)).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(bytes, ("0", new byte[8]));

        Assert.Contains(expected, error.Message);
    }

    /// <summary>Appends <c>(tag, torch.storageClass, key, location[, numel])</c> and BINPERSID. A null size leaves the size out.</summary>
    private static PickleBuilder StorageId(PickleBuilder pickle, string tag, string storageClass, string key, string location, long? numElements)
    {
        pickle.Op(PickleOpcodes.Mark).Str(tag).Global("torch", storageClass).Str(key).Str(location);
        if (numElements is long size)
        {
            pickle.Int(size);
        }

        return pickle.Op(PickleOpcodes.Tuple).Op(PickleOpcodes.BinPersId);
    }

    private static PtFormatException ReadFails(byte[] pickle, params (string Key, byte[] Data)[] storages) =>
        Assert.Throws<PtFormatException>(() => PtReader.Read(new MemoryStream(PtFile(pickle, storages))));
}
