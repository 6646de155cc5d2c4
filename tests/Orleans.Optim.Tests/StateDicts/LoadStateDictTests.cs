using Orleans.Optim.Algorithms;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;
using Orleans.Optim.Python;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Tests.StateDicts;

/// <summary>
/// load_state_dict checks everything before it changes anything: each bad state dict gets an error naming the group,
/// param and key, and the optimizer's state dict afterwards equals the one before.
/// </summary>
public sealed class LoadStateDictTests
{
    private static OptimizerSpec Spec(string algorithm = "Adam", bool amsgrad = false) => new()
    {
        Algorithm = algorithm,
        DefaultOptions = algorithm == "SGD" ? [new("lr", 0.1), new("momentum", 0.9)] : [new("lr", 0.01), new("amsgrad", amsgrad)],
        Groups =
        [
            new ParamGroupSpec([], [new ParameterSpec("w", [3, 2]), new ParameterSpec("b", [3])]),
            new ParamGroupSpec([new("lr", 0.02)], [new ParameterSpec("head", [4])]),
        ],
        MaxShardElements = 4,
    };

    private static LocalOptimizer Trained(OptimizerSpec spec, int steps = 2)
    {
        var optimizer = new LocalOptimizer(spec, [Ones(6), Ones(3), Ones(4)]);
        for (int i = 0; i < steps; i++)
        {
            optimizer.Step([Fill(6, 0.1f * (i + 1)), Fill(3, -0.2f), Fill(4, 0.3f)]);
        }

        return optimizer;
    }

    [Fact]
    public void RoundTripRestoresStateExactly()
    {
        var source = Trained(Spec(amsgrad: true), steps: 3);
        var target = Trained(Spec(amsgrad: true), steps: 1);

        target.LoadStateDict(source.StateDict());

        Assert.Null(StateDictComparison.FirstDifference(source.StateDict(), target.StateDict()));
    }

    [Fact]
    public void LoadedGroupsReplaceHyperparameters()
    {
        var target = Trained(Spec());
        var loaded = target.StateDict();
        loaded.ParamGroups[1]["lr"] = 0.5;
        loaded.ParamGroups[1].Remove("maximize");

        target.LoadStateDict(loaded);

        Assert.Equal(0.5, target.ParamGroups[1]["lr"]);
        Assert.Equal(false, target.ParamGroups[1]["maximize"]);
        Assert.Equal("maximize", target.ParamGroups[1].Keys.Last());
    }

    [Fact]
    public void FloatStateCastStepNotCast()
    {
        var target = Trained(Spec());
        var loaded = target.StateDict();
        var expAvg = (Tensor)loaded.State[0]["exp_avg"]!;
        loaded.State[0]["exp_avg"] = ToFloat64(expAvg);
        loaded.State[0]["step"] = ScalarFloat64(2.0);

        target.LoadStateDict(loaded);
        var after = target.StateDict();

        Assert.True(expAvg.BitwiseEquals((Tensor)after.State[0]["exp_avg"]!));
        Assert.Equal(DType.Float64, ((Tensor)after.State[0]["step"]!).DType);
    }

    [Fact]
    public void StepAsPythonNumberBecomesTensor()
    {
        var target = Trained(Spec());
        var loaded = target.StateDict();
        loaded.State[1]["step"] = 2L;

        target.LoadStateDict(loaded);

        var step = (Tensor)target.StateDict().State[1]["step"]!;
        Assert.Equal(DType.Float32, step.DType);
        Assert.Empty(step.Shape);
    }

    [Fact]
    public void WrongGroupCountRejected()
    {
        AssertRejected(Spec(), sd => new OptimizerStateDict(sd.State, [sd.ParamGroups[0]]),
            "loaded state dict has a different number of parameter groups: the optimizer has 2, the loaded state dict has 1");
    }

    [Fact]
    public void WrongParamsPerGroupRejected()
    {
        AssertRejected(Spec(), sd =>
        {
            ((List<object?>)sd.ParamGroups[0]["params"]!).RemoveAt(1);
            return sd;
        }, "param_groups[0] has 2 params in the optimizer and 1 in the loaded state dict");
    }

    [Fact]
    public void WrongShapeRejected()
    {
        AssertRejected(Spec(), sd =>
        {
            sd.State[0]["exp_avg"] = Tensor.Zeros(2, 3);
            return sd;
        }, "state[0] ('w') entry 'exp_avg': expected a floating-point tensor of shape [3, 2] like its parameter, found Tensor[float32,[2, 3]]");
    }

    [Fact]
    public void MissingEntryRejected()
    {
        AssertRejected(Spec(), sd =>
        {
            sd.State[2].Remove("exp_avg_sq");
            return sd;
        }, "state[2] ('head') is missing entry 'exp_avg_sq': Adam with these hyperparameters keeps ['step', 'exp_avg', 'exp_avg_sq']");
    }

    [Fact]
    public void ExtraEntryRejected()
    {
        AssertRejected(Spec(), sd =>
        {
            sd.State[1]["max_exp_avg_sq"] = Tensor.Zeros(3);
            return sd;
        }, "state[1] ('b') has unexpected entry 'max_exp_avg_sq'");
    }

    [Fact]
    public void AmsgradWithoutMaxRejected()
    {
        AssertRejected(Spec(), sd =>
        {
            sd.ParamGroups[0]["amsgrad"] = true;
            return sd;
        }, "state[0] ('w') is missing entry 'max_exp_avg_sq'");
    }

    [Fact]
    public void NameMismatchRejected()
    {
        AssertRejected(Spec(), sd =>
        {
            sd.ParamGroups[0][StateDictAssembler.ParamNamesKey] = new List<object?> { "w", "bias" };
            return sd;
        }, "Parameter name mismatch in param_groups[0] at position 1 (param ID 1): the optimizer has 'b', the loaded state dict has 'bias'");
    }

    [Fact]
    public void NonFiniteLearningRateRejected()
    {
        AssertRejected(Spec(), sd =>
        {
            sd.ParamGroups[1]["lr"] = double.NaN;
            return sd;
        }, "Invalid lr in param_groups[1]['lr']: expected a finite number, found nan");
    }

    [Fact]
    public void NegativeLearningRateRejected()
    {
        AssertRejected(Spec(), sd =>
        {
            sd.ParamGroups[0]["lr"] = -1.0;
            return sd;
        }, "Invalid learning rate: -1.0 in param_groups[0]['lr']; expected a value >= 0.0");
    }

    [Fact]
    public void IntegerStateTensorRejected()
    {
        AssertRejected(Spec(), sd =>
        {
            sd.State[1]["exp_avg"] = new Tensor(DType.Int64, [3], new byte[24]);
            return sd;
        }, "state[1] ('b') entry 'exp_avg': expected a floating-point tensor of shape [3] like its parameter, found Tensor[int64,[3]]");
    }

    [Fact]
    public void UnknownParamIdRejected()
    {
        AssertRejected(Spec(), sd =>
        {
            sd.State[7] = sd.State[0];
            return sd;
        }, "state[7] belongs to no parameter: the loaded param_groups list param IDs [0, 1, 2]");
    }

    [Fact]
    public void SgdNoneBufferAccepted()
    {
        var target = Trained(Spec("SGD"));
        var loaded = target.StateDict();
        loaded.State[0]["momentum_buffer"] = null;

        target.LoadStateDict(loaded);

        Assert.Null(target.StateDict().State[0]["momentum_buffer"]);
    }

    [Fact]
    public void ModelStateDictRejected()
    {
        var root = new PythonOrderedDict { ["0.weight"] = Tensor.Zeros(2, 2) };

        var error = Assert.Throws<StateDictException>(() => OptimizerStateDict.FromPython(root));

        Assert.Contains("Expected key 'state' holding a dict, found no such key; the root has keys ['0.weight']", error.Message);
    }

    private static void AssertRejected(OptimizerSpec spec, Func<OptimizerStateDict, OptimizerStateDict> corrupt, string expectedMessage)
    {
        var target = Trained(spec);
        var before = target.StateDict();
        var loaded = corrupt(Trained(spec, steps: 3).StateDict());

        var error = Assert.Throws<StateDictException>(() => target.LoadStateDict(loaded));

        Assert.Contains(expectedMessage, error.Message);
        Assert.Null(StateDictComparison.FirstDifference(before, target.StateDict()));
        Assert.Null(StateDictComparison.ArrayDifference(Trained(spec).Parameter(0), target.Parameter(0)));
    }

    private static float[] Ones(int length) => Fill(length, 1f);

    private static float[] Fill(int length, float value) => Enumerable.Repeat(value, length).ToArray();

    private static Tensor ToFloat64(Tensor tensor)
    {
        var floats = tensor.AsFloats();
        var bytes = new byte[floats.Length * 8];
        for (int i = 0; i < floats.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(i * 8), floats[i]);
        }

        return new Tensor(DType.Float64, tensor.Shape, bytes);
    }

    private static Tensor ScalarFloat64(double value)
    {
        var bytes = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteDoubleLittleEndian(bytes, value);
        return new Tensor(DType.Float64, [], bytes);
    }
}
