using Orleans.Optim.Algorithms;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;
using Orleans.Optim.Tensors;

namespace Orleans.Optim.Tests.Algorithms;

/// <summary>
/// Torch 1.13's constructor checks of Adagrad, RMSprop, Adadelta and Adamax: each invalid value raises torch's message
/// followed by the path of the value, and the boundary values that torch accepts pass.
/// </summary>
public sealed class HyperparameterCheckTests
{
    /// <summary>Algorithm, group options, expected message start and expected path.</summary>
    public static TheoryData<string, string, string, string> InvalidGroups() => new()
    {
        { "Adagrad", "lr=-0.1", "Invalid learning rate: -0.1", "lr" },
        { "Adagrad", "lr_decay=-0.001", "Invalid lr_decay value: -0.001", "lr_decay" },
        { "Adagrad", "weight_decay=-0.01", "Invalid weight_decay value: -0.01", "weight_decay" },
        { "Adagrad", "initial_accumulator_value=-0.5", "Invalid initial_accumulator_value value: -0.5", "initial_accumulator_value" },
        { "Adagrad", "eps=-1e-10", "Invalid epsilon value: -1e-10", "eps" },
        { "RMSprop", "lr=-0.01", "Invalid learning rate: -0.01", "lr" },
        { "RMSprop", "eps=-1e-08", "Invalid epsilon value: -1e-08", "eps" },
        { "RMSprop", "momentum=-0.9", "Invalid momentum value: -0.9", "momentum" },
        { "RMSprop", "weight_decay=-0.1", "Invalid weight_decay value: -0.1", "weight_decay" },
        { "RMSprop", "alpha=-0.99", "Invalid alpha value: -0.99", "alpha" },
        { "Adadelta", "lr=-1.0", "Invalid learning rate: -1.0", "lr" },
        { "Adadelta", "rho=1.5", "Invalid rho value: 1.5", "rho" },
        { "Adadelta", "rho=-0.1", "Invalid rho value: -0.1", "rho" },
        { "Adadelta", "eps=-1e-06", "Invalid epsilon value: -1e-06", "eps" },
        { "Adadelta", "weight_decay=-0.5", "Invalid weight_decay value: -0.5", "weight_decay" },
        { "Adamax", "lr=-0.002", "Invalid learning rate: -0.002", "lr" },
        { "Adamax", "eps=-1e-08", "Invalid epsilon value: -1e-08", "eps" },
        { "Adamax", "betas=1.0:0.999", "Invalid beta parameter at index 0: 1.0", "betas" },
        { "Adamax", "betas=-0.1:0.999", "Invalid beta parameter at index 0: -0.1", "betas" },
        { "Adamax", "betas=0.9:1.0", "Invalid beta parameter at index 1: 1.0", "betas" },
        { "Adamax", "weight_decay=-0.01", "Invalid weight_decay value: -0.01", "weight_decay" },
    };

    /// <summary>Algorithm and group options at the edges of torch's ranges.</summary>
    public static TheoryData<string, string> BoundaryGroups() => new()
    {
        { "Adagrad", "lr=0.0,lr_decay=0.0,weight_decay=0.0,initial_accumulator_value=0.0,eps=0.0" },
        { "RMSprop", "lr=0.0,eps=0.0,momentum=0.0,weight_decay=0.0,alpha=0.0" },
        { "Adadelta", "rho=0.0" },
        { "Adadelta", "rho=1.0,eps=0.0,lr=0.0" },
        { "Adamax", "betas=0.0:0.0,eps=0.0,lr=0.0" },
    };

    [Theory]
    [MemberData(nameof(InvalidGroups))]
    public void InvalidValueRaisesTorchMessage(string algorithm, string options, string torchMessage, string key)
    {
        var spec = SpecWithGroupOptions(algorithm, ParseOptions(options));

        var error = Assert.Throws<InvalidHyperparameterException>(() => spec.Resolve());

        Assert.StartsWith($"{torchMessage} in param_groups[1]['{key}']; expected ", error.Reason);
        Assert.Equal($"param_groups[1]['{key}']", error.ParamName);
    }

    [Theory]
    [MemberData(nameof(BoundaryGroups))]
    public void BoundaryValuesAccepted(string algorithm, string options)
    {
        var spec = SpecWithGroupOptions(algorithm, ParseOptions(options));

        var (_, _, groups) = spec.Resolve();

        Assert.Equal(2, groups.Count);
    }

    [Fact]
    public void AdadeltaRhoMessageNamesRange()
    {
        var spec = SpecWithGroupOptions("Adadelta", [new("rho", 2.0)]);

        var error = Assert.Throws<InvalidHyperparameterException>(() => spec.Resolve());

        Assert.Equal("Invalid rho value: 2.0 in param_groups[1]['rho']; expected 0.0 <= rho <= 1.0.", error.Reason);
    }

    [Fact]
    public void AdagradConstructorAccumulatorChecked()
    {
        // Torch checks the constructor argument, which fills every sum, even where each group sets its own value.
        var spec = new OptimizerSpec
        {
            Algorithm = "Adagrad",
            DefaultOptions = [new("initial_accumulator_value", -1L)],
            Groups = [new ParamGroupSpec([new("initial_accumulator_value", 0.5)], [new ParameterSpec(null, [3])])],
        };

        var error = Assert.Throws<InvalidHyperparameterException>(() => spec.Resolve());

        Assert.Equal(
            "Invalid initial_accumulator_value value: -1.0 in defaults['initial_accumulator_value']; expected a value >= 0.0.",
            error.Reason);
        Assert.Equal("defaults['initial_accumulator_value']", error.ParamName);
    }

    [Fact]
    public void AdagradSumStartsAtConstructorValue()
    {
        var spec = new OptimizerSpec
        {
            Algorithm = "Adagrad",
            DefaultOptions = [new("initial_accumulator_value", 0.1)],
            Groups =
            [
                new ParamGroupSpec([], [new ParameterSpec(null, [2])]),
                new ParamGroupSpec([new("initial_accumulator_value", 0.5)], [new ParameterSpec(null, [3])]),
            ],
            MaxShardElements = 2,
        };

        var state = new LocalOptimizer(spec, [new float[2], new float[3]]).StateDict().State;

        Assert.Equal(new long[] { 0, 1 }, state.Keys);
        foreach (var entries in state.Values)
        {
            Assert.Equal(new[] { "step", "sum" }, entries.Keys);
            Assert.Equal(0f, ((Tensor)entries["step"]!).AsFloats()[0]);
            Assert.All(((Tensor)entries["sum"]!).AsFloats().ToArray(), value => Assert.Equal(0.1f, value));
        }
    }

    [Fact]
    public void RMSpropDifferentiableRejected()
    {
        var spec = SpecWithGroupOptions("RMSprop", [new("differentiable", true)]);

        var error = Assert.Throws<InvalidHyperparameterException>(() => spec.Resolve());

        Assert.StartsWith("Invalid differentiable in param_groups[1]['differentiable']: differentiable=True is not supported", error.Reason);
    }

    [Theory]
    [InlineData("Adagrad", "nesterov")]
    [InlineData("RMSprop", "betas")]
    [InlineData("Adadelta", "differentiable")]
    [InlineData("Adamax", "amsgrad")]
    public void UnknownKeywordRejected(string algorithm, string key)
    {
        var spec = new OptimizerSpec
        {
            Algorithm = algorithm,
            DefaultOptions = [new(key, true)],
            Groups = [new ParamGroupSpec([], [new ParameterSpec(null, [3])])],
        };

        var error = Assert.Throws<InvalidHyperparameterException>(() => spec.Resolve());

        Assert.StartsWith($"{algorithm}.__init__() got an unexpected keyword argument '{key}'.", error.Reason);
    }

    private static OptimizerSpec SpecWithGroupOptions(string algorithm, List<KeyValuePair<string, object?>> groupOptions) => new()
    {
        Algorithm = algorithm,
        Groups =
        [
            new ParamGroupSpec([], [new ParameterSpec(null, [3])]),
            new ParamGroupSpec(groupOptions, [new ParameterSpec(null, [2])]),
        ],
    };

    // "key=value,..." where a value is a float, or two floats joined by ':' for a tuple such as betas.
    private static List<KeyValuePair<string, object?>> ParseOptions(string text) =>
        text.Split(',').Select(pair =>
        {
            string[] parts = pair.Split('=');
            object? value = parts[1].Contains(':')
                ? parts[1].Split(':').Select(item => (object?)ParseDouble(item)).ToArray()
                : ParseDouble(parts[1]);
            return new KeyValuePair<string, object?>(parts[0], value);
        }).ToList();

    private static double ParseDouble(string text) => double.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
}
