using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Python;
using Orleans.Optim.Tensors;
using Xunit;

namespace Orleans.Optim.Tests.Pt;

/// <summary>Reads real torch 1.13 files from <c>Pt/Fixtures</c> and compares with what torch.load returned for them.</summary>
public sealed class PtReaderFixtureTests
{
    public static TheoryData<string> StateFixtures => new(PtFixtures.StateFixtures);

    [Theory]
    [MemberData(nameof(StateFixtures))]
    public void ReadMatchesTorchLoad(string fixture)
    {
        var state = PtReader.ReadFile(PtFixtures.PathOf(fixture + ".pt"));

        TorchValueAssert.Matches(PtFixtures.Expected(fixture).GetProperty("value"), state);
    }

    [Fact]
    public void ComparisonDetectsChangedValue()
    {
        var state = PtReader.ReadFile(PtFixtures.PathOf("adam_state.pt"));
        var groups = (List<object?>)state["param_groups"]!;
        ((OrderedDictionary<object, object?>)groups[0]!)["eps"] = 1e-7;

        var error = Assert.ThrowsAny<Exception>(() => TorchValueAssert.Matches(PtFixtures.Expected("adam_state").GetProperty("value"), state));

        Assert.StartsWith("root['param_groups'][0]['eps']: expected float 1E-08", error.Message);
    }

    [Fact]
    public void ReadKeepsAdamStateStructure()
    {
        var state = PtReader.ReadFile(PtFixtures.PathOf("adam_state.pt"));

        Assert.IsType<OrderedDictionary<object, object?>>(state);
        Assert.Equal(["state", "param_groups"], state.Keys);
        var perParameter = Assert.IsType<OrderedDictionary<object, object?>>(state["state"]);
        Assert.Equal([0L, 1L, 2L, 3L], perParameter.Keys);

        var first = Assert.IsType<OrderedDictionary<object, object?>>(perParameter[0L]);
        Assert.Equal(["step", "exp_avg", "exp_avg_sq"], first.Keys);
        var step = Assert.IsType<Tensor>(first["step"]);
        Assert.Equal(DType.Float32, step.DType);
        Assert.Empty(step.Shape);
        Assert.Equal(3f, step.AsFloats()[0]);

        var amsgrad = Assert.IsType<OrderedDictionary<object, object?>>(perParameter[2L]);
        Assert.Equal(["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"], amsgrad.Keys);

        var groups = Assert.IsType<List<object?>>(state["param_groups"]);
        Assert.Equal(2, groups.Count);
        var second = Assert.IsType<OrderedDictionary<object, object?>>(groups[1]);
        var betas = Assert.IsType<object?[]>(second["betas"]);
        Assert.Equal([0.8, 0.95], betas);
        Assert.Equal(5e-4, second["lr"]);
        Assert.Equal(true, second["amsgrad"]);
        Assert.Null(second["foreach"]);
        Assert.Equal("params", second.GetAt(second.Count - 1).Key);
        Assert.Equal(new List<object?> { 2L, 3L }, second["params"]);
    }

    [Fact]
    public void ReadKeepsModelStateMetadata()
    {
        var state = PtReader.ReadFile(PtFixtures.PathOf("model_state.pt"));

        var model = Assert.IsType<PythonOrderedDict>(state);
        Assert.Equal(
            ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked", "3.weight", "3.bias"],
            model.Keys);
        var batches = Assert.IsType<Tensor>(model["1.num_batches_tracked"]);
        Assert.Equal(DType.Int64, batches.DType);
        Assert.Equal(1L, BitConverter.ToInt64(batches.Data));

        var metadata = Assert.IsType<PythonOrderedDict>(model.Metadata);
        Assert.Equal(["", "0", "1", "2", "3"], metadata.Keys);
        var batchNorm = Assert.IsType<OrderedDictionary<object, object?>>(metadata["1"]);
        Assert.Equal(2L, batchNorm["version"]);
    }

    [Fact]
    public void ReadMaterializesStridedViews()
    {
        var state = PtReader.ReadFile(PtFixtures.PathOf("views_state.pt"));
        var views = (OrderedDictionary<object, object?>)((OrderedDictionary<object, object?>)state["state"]!)[0L]!;

        // base = arange(24).reshape(4, 6), so base.t()[i][j] = 6 * j + i.
        var transposed = Assert.IsType<Tensor>(views["transposed"]);
        Assert.Equal([6L, 4L], transposed.Shape);
        Assert.Equal([0f, 6f, 12f, 18f, 1f, 7f], transposed.AsFloats()[..6].ToArray());

        // big = arange(100) * 0.5, so big[::3] contains 1.5 * i and big[10:20] starts at 5.
        var strided = Assert.IsType<Tensor>(views["strided"]);
        Assert.Equal(34, strided.NumElements);
        Assert.Equal(49.5f, strided.AsFloats()[33]);
        Assert.Equal(5f, Assert.IsType<Tensor>(views["offset_slice"]).AsFloats()[0]);
        Assert.Equal(3.5f, Assert.IsType<Tensor>(views["scalar_view"]).AsFloats()[0]);
        Assert.Equal(0, Assert.IsType<Tensor>(views["empty_view"]).NumElements);

        var low = Assert.IsType<Tensor>(views["shared_low"]);
        var high = Assert.IsType<Tensor>(views["shared_high"]);
        Assert.NotSame(low.Data, high.Data);
        Assert.Equal(25f, high.AsFloats()[0]);
    }

    [Fact]
    public void ReadKeepsSameTensorIdentity()
    {
        var state = PtReader.ReadFile(PtFixtures.PathOf("views_state.pt"));

        var twice = Assert.IsType<List<object?>>(state["same_tensor_twice"]);
        Assert.Same(twice[0], twice[1]);
    }

    [Fact]
    public void ReadTurnsParametersIntoTensors()
    {
        var expected = PtFixtures.Expected("parameters_state").GetProperty("value");
        var state = PtReader.ReadFile(PtFixtures.PathOf("parameters_state.pt"));

        Assert.Contains(TorchValueAssert.Tensors(expected), tensor => tensor.GetProperty("type").GetString() == "Parameter");
        Assert.All(state.Values, value => Assert.IsType<Tensor>(value));
    }

    [Fact]
    public void ReadDecodesProtocolZeroOpcodes()
    {
        // {'s': 'it\'s', 'u': 'é€', 'i': -7, 'l': 123456789012, 'f': 0.5, 'b': True} written with text opcodes.
        byte[] bytes = new PickleBuilder()
            .Op(PickleOpcodes.Mark).Op(PickleOpcodes.Dict)
            .Op(PickleOpcodes.String, "'s'\n"u8.ToArray()).Op(PickleOpcodes.String, "'it\\'s'\n"u8.ToArray()).Op(PickleOpcodes.SetItem)
            .Op(PickleOpcodes.Unicode, "u\n"u8.ToArray()).Op(PickleOpcodes.Unicode, [0xe9, .. "\\u20ac\n"u8]).Op(PickleOpcodes.SetItem)
            .Op(PickleOpcodes.Unicode, "i\n"u8.ToArray()).Op(PickleOpcodes.Int, "-7\n"u8.ToArray()).Op(PickleOpcodes.SetItem)
            .Op(PickleOpcodes.Unicode, "l\n"u8.ToArray()).Op(PickleOpcodes.Long, "123456789012L\n"u8.ToArray()).Op(PickleOpcodes.SetItem)
            .Op(PickleOpcodes.Unicode, "f\n"u8.ToArray()).Op(PickleOpcodes.Float, "0.5\n"u8.ToArray()).Op(PickleOpcodes.SetItem)
            .Op(PickleOpcodes.Unicode, "b\n"u8.ToArray()).Op(PickleOpcodes.Int, "01\n"u8.ToArray()).Op(PickleOpcodes.SetItem)
            .Stop();

        var state = PtReader.Read(new MemoryStream(PtArchiveBuilder.PtFile(bytes)));

        Assert.Equal(["s", "u", "i", "l", "f", "b"], state.Keys);
        Assert.Equal("it's", state["s"]);
        Assert.Equal("\u00e9\u20ac", state["u"]);
        Assert.Equal(-7L, state["i"]);
        Assert.Equal(123456789012L, state["l"]);
        Assert.Equal(0.5, state["f"]);
        Assert.Equal(true, state["b"]);
    }
}
