using Orleans.Optim.Algorithms;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Tests.StateDicts;

/// <summary>
/// load_state_dict with the state kinds of Adagrad, RMSprop, Adadelta and Adamax: an int <c>step</c>, a 0-d tensor
/// <c>step</c>, and state that Adagrad's constructor creates for every parameter.
/// </summary>
public sealed class LoadStepKindsTests
{
    [Theory]
    [InlineData("Adagrad", "lr_decay", 0.01)]
    [InlineData("RMSprop", "momentum", 0.9)]
    [InlineData("Adadelta", "rho", 0.8)]
    [InlineData("Adamax", "weight_decay", 0.01)]
    public void ResumeContinuesExactly(string algorithm, string key, double value)
    {
        // load_state_dict restores the optimizer state only, so the target starts from the source's parameters.
        var spec = Spec(algorithm, [new(key, value)]);
        var source = Trained(spec, steps: 3);
        var target = new LocalOptimizer(spec, [source.Parameter(0), source.Parameter(1), source.Parameter(2)]);

        target.LoadStateDict(source.StateDict());
        Assert.Null(StateDictComparison.FirstDifference(source.StateDict(), target.StateDict()));

        source.Step(Gradients(4));
        target.Step(Gradients(4));
        Assert.Null(StateDictComparison.FirstDifference(source.StateDict(), target.StateDict()));
        for (int id = 0; id < 3; id++)
        {
            Assert.Null(StateDictComparison.ArrayDifference(source.Parameter(id), target.Parameter(id)));
        }
    }

    [Theory]
    [InlineData("RMSprop")]
    [InlineData("Adadelta")]
    public void IntStepStaysInt(string algorithm)
    {
        var target = Trained(Spec(algorithm, []), steps: 1);

        target.LoadStateDict(Trained(Spec(algorithm, []), steps: 3).StateDict());
        target.Step(Gradients(4));

        Assert.Equal(4L, target.StateDict().State[0]["step"]);
    }

    [Theory]
    [InlineData("RMSprop")]
    [InlineData("Adadelta")]
    public void TensorStepForIntRejected(string algorithm)
    {
        var target = Trained(Spec(algorithm, []), steps: 1);
        var loaded = Trained(Spec(algorithm, []), steps: 3).StateDict();
        loaded.State[1]["step"] = Tensor.Scalar(3f);

        var error = Assert.Throws<StateDictException>(() => target.LoadStateDict(loaded));

        Assert.Contains("state[1] ('b') entry 'step': expected a Python int, found Tensor[float32,[]]", error.Message);
    }

    [Theory]
    [InlineData("Adagrad")]
    [InlineData("Adamax")]
    public void IntStepBecomesFloatTensor(string algorithm)
    {
        var target = Trained(Spec(algorithm, []), steps: 1);
        var loaded = Trained(Spec(algorithm, []), steps: 3).StateDict();
        loaded.State[0]["step"] = 3L;

        target.LoadStateDict(loaded);

        var step = (Tensor)target.StateDict().State[0]["step"]!;
        Assert.Equal(DType.Float32, step.DType);
        Assert.Equal(3f, step.AsFloats()[0]);
    }

    [Fact]
    public void RMSpropBufferFollowsMomentum()
    {
        // A state dict saved without momentum has no momentum_buffer, which a group with momentum needs.
        var target = Trained(Spec("RMSprop", [new("momentum", 0.9)]), steps: 1);
        var loaded = Trained(Spec("RMSprop", []), steps: 2).StateDict();
        loaded.ParamGroups[1]["momentum"] = 0.9;

        var error = Assert.Throws<StateDictException>(() => target.LoadStateDict(loaded));

        Assert.Contains("state[2] ('head') is missing entry 'momentum_buffer'", error.Message);
    }

    [Fact]
    public void AdagradMissingStateRejected()
    {
        var target = Trained(Spec("Adagrad", []), steps: 1);
        var before = target.StateDict();
        var loaded = Trained(Spec("Adagrad", []), steps: 2).StateDict();
        loaded.State.Remove(1);

        var error = Assert.Throws<StateDictException>(() => target.LoadStateDict(loaded));

        Assert.Contains("The loaded state has no entry for param ID 1 ('b'): Adagrad creates the state of every parameter in its constructor", error.Message);
        Assert.Null(StateDictComparison.FirstDifference(before, target.StateDict()));
    }

    [Fact]
    public void AdagradStateWithoutGradientKept()
    {
        // Adagrad's constructor creates the state, so a parameter that never had a gradient still has step 0.
        var optimizer = new LocalOptimizer(Spec("Adagrad", []), [Fill(6, 1f), Fill(3, 1f), Fill(4, 1f)]);

        optimizer.Step([Fill(6, 0.5f), null, Fill(4, -0.5f)]);
        var state = optimizer.StateDict().State;

        Assert.Equal(new long[] { 0, 1, 2 }, state.Keys);
        Assert.Equal(0f, ((Tensor)state[1]["step"]!).AsFloats()[0]);
        Assert.Equal(1f, ((Tensor)state[2]["step"]!).AsFloats()[0]);
    }

    private static OptimizerSpec Spec(string algorithm, List<KeyValuePair<string, object?>> defaults) => new()
    {
        Algorithm = algorithm,
        DefaultOptions = defaults,
        Groups =
        [
            new ParamGroupSpec([], [new ParameterSpec("w", [3, 2]), new ParameterSpec("b", [3])]),
            new ParamGroupSpec([new("lr", 0.02)], [new ParameterSpec("head", [4])]),
        ],
        MaxShardElements = 4,
    };

    private static LocalOptimizer Trained(OptimizerSpec spec, int steps)
    {
        var optimizer = new LocalOptimizer(spec, [Fill(6, 1f), Fill(3, 1f), Fill(4, 1f)]);
        for (int i = 0; i < steps; i++)
        {
            optimizer.Step(Gradients(i + 1));
        }

        return optimizer;
    }

    private static List<float[]?> Gradients(int step) => [Fill(6, 0.1f * step), Fill(3, -0.2f), Fill(4, 0.3f / step)];

    private static float[] Fill(int length, float value) => Enumerable.Repeat(value, length).ToArray();
}
