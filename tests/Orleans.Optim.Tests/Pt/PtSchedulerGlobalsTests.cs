using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Python;
using static Orleans.Optim.Tests.Pt.PtArchiveBuilder;

namespace Orleans.Optim.Tests.Pt;

/// <summary>
/// The globals that scheduler state dicts need: <c>collections.Counter</c>, and the shape in which torch 1.13
/// pickles OneCycleLR's <c>anneal_func</c>. Each is accepted only in that shape, and every neighbor stays rejected.
/// </summary>
public sealed class PtSchedulerGlobalsTests
{
    private const string PickleEntry = "archive/data.pkl";

    public static TheoryData<string, string> StillForbiddenGlobals => new()
    {
        { "torch.optim.lr_scheduler", "StepLR" },
        { "torch.optim.lr_scheduler", "LambdaLR" },
        { "torch.optim.sgd", "sgd" },
        { "builtins", "setattr" },
        { "__builtin__", "eval" },
        { "builtins", "list" },
        { "collections", "deque" },
        { "copyreg", "_reconstructor" },
    };

    [Fact]
    public void CounterReadsAsPythonCounter()
    {
        byte[] pickle = Root("milestones", p => p
            .Global("collections", "Counter").Op(PickleOpcodes.EmptyDict)
            .Op(PickleOpcodes.Mark).Int(30).Int(1).Int(80).Int(2).Op(PickleOpcodes.SetItems)
            .Op(PickleOpcodes.Tuple1).Op(PickleOpcodes.Reduce));

        var root = PtReader.Read(new MemoryStream(PtFile(pickle)));

        var counter = Assert.IsType<PythonCounter>(root["milestones"]);
        Assert.Equal([30L, 80L], counter.Keys);
        Assert.Equal([1L, 2L], counter.Values);
    }

    [Fact]
    public void CounterWithoutItemsReadsEmpty()
    {
        byte[] pickle = Root("milestones", p => p.Global("collections", "Counter").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.Reduce));

        var root = PtReader.Read(new MemoryStream(PtFile(pickle)));

        Assert.Empty(Assert.IsType<PythonCounter>(root["milestones"]));
    }

    [Fact]
    public void CounterOfTwoArgumentsRejected()
    {
        byte[] pickle = Root("milestones", p => p
            .Global("collections", "Counter").Op(PickleOpcodes.EmptyDict).Op(PickleOpcodes.EmptyDict)
            .Op(PickleOpcodes.Tuple2).Op(PickleOpcodes.Reduce));

        var error = ReadFails(pickle);

        Assert.Contains("calls collections.Counter with a tuple of 2 items", error.Message);
    }

    [Theory]
    [InlineData("__builtin__", "_annealing_cos")]
    [InlineData("builtins", "_annealing_cos")]
    [InlineData("__builtin__", "_annealing_linear")]
    public void AnnealFunctionReadsAsBoundMethod(string builtinsModule, string methodName)
    {
        byte[] pickle = Root("anneal_func", p => AnnealFunction(p, builtinsModule, "OneCycleLR", methodName));

        var root = PtReader.Read(new MemoryStream(PtFile(pickle)));

        var method = Assert.IsType<PythonBoundMethod>(root["anneal_func"]);
        Assert.Equal(methodName, method.MethodName);
        Assert.Same(methodName == "_annealing_cos" ? PythonBoundMethod.OneCycleAnnealingCos : PythonBoundMethod.OneCycleAnnealingLinear, method);
    }

    [Fact]
    public void AnnealFunctionOfBuiltObjectReads()
    {
        // The OneCycleLR object gets its attributes through BUILD, as torch.save writes it; they are dropped.
        byte[] pickle = Root("anneal_func", p => p
            .Global("__builtin__", "getattr")
            .Global("torch.optim.lr_scheduler", "OneCycleLR").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.NewObj)
            .Op(PickleOpcodes.EmptyDict).Str("total_steps").Int(10).Op(PickleOpcodes.SetItem).Op(PickleOpcodes.Build)
            .Str("_annealing_cos").Op(PickleOpcodes.Tuple2).Op(PickleOpcodes.Reduce));

        var root = PtReader.Read(new MemoryStream(PtFile(pickle)));

        Assert.Same(PythonBoundMethod.OneCycleAnnealingCos, root["anneal_func"]);
    }

    [Theory]
    [InlineData("__init__")]
    [InlineData("step")]
    [InlineData("__class__")]
    [InlineData("_format_param")]
    public void GetattrOfOtherMethodRejected(string methodName)
    {
        byte[] pickle = Root("anneal_func", p => AnnealFunction(p, "__builtin__", "OneCycleLR", methodName));

        var error = ReadFails(pickle);

        Assert.Contains("calls builtins.getattr with", error.Message);
        Assert.Contains("may be malicious", error.Message);
    }

    [Fact]
    public void GetattrOfOptimizerRejected()
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("f")
            .Global("__builtin__", "getattr")
            .Global("torch.optim.sgd", "SGD").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.NewObj)
            .Str("_annealing_cos").Op(PickleOpcodes.Tuple2).Op(PickleOpcodes.Reduce).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(pickle);

        Assert.Contains("calls builtins.getattr with a tuple of 2 items", error.Message);
    }

    [Fact]
    public void GetattrOfStringRejected()
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("f")
            .Global("builtins", "getattr").Str("text").Str("upper").Op(PickleOpcodes.Tuple2).Op(PickleOpcodes.Reduce)
            .Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(pickle);

        Assert.Contains("may only use getattr to take _annealing_cos or _annealing_linear from a OneCycleLR object", error.Message);
    }

    [Fact]
    public void NewObjOfOtherClassRejected()
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("x");
        int newObjAt = pickle.Global("collections", "OrderedDict").Op(PickleOpcodes.EmptyTuple).Position;
        byte[] bytes = pickle.Op(PickleOpcodes.NewObj).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(bytes);

        Assert.StartsWith($"NEWOBJ in {PickleEntry} at byte {newObjAt} creates an object of collections.OrderedDict", error.Message);
        Assert.Equal(newObjAt, error.Position);
    }

    [Fact]
    public void NewObjWithArgumentsRejected()
    {
        byte[] pickle = Root("x", p => p
            .Global("torch.optim.lr_scheduler", "OneCycleLR").Int(1).Op(PickleOpcodes.Tuple1).Op(PickleOpcodes.NewObj));

        var error = ReadFails(pickle);

        Assert.Contains("creates torch.optim.lr_scheduler.OneCycleLR with a tuple of 1 items instead of no arguments", error.Message);
    }

    [Fact]
    public void SchedulerObjectAsValueRejected()
    {
        byte[] pickle = Root("scheduler", p => p
            .Global("torch.optim.lr_scheduler", "OneCycleLR").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.NewObj));

        var error = ReadFails(pickle);

        Assert.Contains("produces a torch.optim.lr_scheduler.OneCycleLR object outside the anneal_func of a OneCycleLR state dict", error.Message);
    }

    [Fact]
    public void SchedulerClassCalledRejected()
    {
        byte[] pickle = Root("scheduler", p => p
            .Global("torch.optim.lr_scheduler", "OneCycleLR").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.Reduce));

        var error = ReadFails(pickle);

        Assert.Contains("calls torch.optim.lr_scheduler.OneCycleLR with REDUCE", error.Message);
    }

    [Fact]
    public void BuildOfSchedulerWithListRejected()
    {
        byte[] pickle = Root("scheduler", p => p
            .Global("torch.optim.lr_scheduler", "OneCycleLR").Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.NewObj)
            .Op(PickleOpcodes.EmptyList).Op(PickleOpcodes.Build));

        var error = ReadFails(pickle);

        Assert.Contains("gives a torch.optim.lr_scheduler.OneCycleLR object the state a list of 0 items instead of a dict of attributes", error.Message);
    }

    [Fact]
    public void DefaultDictAsValueRejected()
    {
        byte[] pickle = Root("state", p => p
            .Global("collections", "defaultdict").Global("__builtin__", "dict").Op(PickleOpcodes.Tuple1).Op(PickleOpcodes.Reduce));

        var error = ReadFails(pickle);

        Assert.Contains("produces a defaultdict outside the state of a pickled optimizer", error.Message);
    }

    [Fact]
    public void DefaultDictOfOtherFactoryRejected()
    {
        byte[] pickle = Root("state", p => p
            .Global("collections", "defaultdict").Global("collections", "OrderedDict").Op(PickleOpcodes.Tuple1).Op(PickleOpcodes.Reduce));

        var error = ReadFails(pickle);

        Assert.Contains("may only contain defaultdict(dict)", error.Message);
    }

    [Theory]
    [MemberData(nameof(StillForbiddenGlobals))]
    public void NeighborGlobalRejected(string module, string name)
    {
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("x");
        int globalAt = pickle.Position;
        byte[] bytes = pickle.Global(module, name).Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.Reduce).Op(PickleOpcodes.SetItem).Stop();

        var error = ReadFails(bytes);

        Assert.StartsWith($"Rejected global '{module}.{name}' in {PickleEntry} at byte {globalAt}:", error.Message);
    }

    [Fact]
    public void CounterAndMethodRoundTrip()
    {
        var state = new OrderedDictionary<object, object?>
        {
            ["milestones"] = PythonCounter.FromElements([90L, 20L, 50L, 50L]),
            ["anneal_func"] = PythonBoundMethod.OneCycleAnnealingLinear,
            ["plain"] = new OrderedDictionary<object, object?> { [90L] = 1L },
        };
        using var stream = new MemoryStream();

        PtWriter.Write(stream, state);
        stream.Position = 0;
        var reread = PtReader.Read(stream);

        Assert.True(PythonValues.StrictEquals(state, reread), $"Read back {PythonValues.Format(reread)}.");
        Assert.IsType<PythonCounter>(reread["milestones"]);
        Assert.IsType<OrderedDictionary<object, object?>>(reread["plain"]);
        Assert.False(PythonValues.StrictEquals(reread["milestones"], new OrderedDictionary<object, object?>((PythonCounter)reread["milestones"]!)));
    }

    private static PickleBuilder AnnealFunction(PickleBuilder pickle, string builtinsModule, string className, string methodName) =>
        pickle.Global(builtinsModule, "getattr")
            .Global("torch.optim.lr_scheduler", className).Op(PickleOpcodes.EmptyTuple).Op(PickleOpcodes.NewObj)
            .Str(methodName).Op(PickleOpcodes.Tuple2).Op(PickleOpcodes.Reduce);

    /// <summary>Returns the pickle of <c>{key: value}</c>, where <paramref name="value"/> appends the opcodes of the value.</summary>
    private static byte[] Root(string key, Func<PickleBuilder, PickleBuilder> value) =>
        value(PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str(key)).Op(PickleOpcodes.SetItem).Stop();

    private static PtFormatException ReadFails(byte[] pickle) =>
        Assert.Throws<PtFormatException>(() => PtReader.Read(new MemoryStream(PtFile(pickle))));
}
