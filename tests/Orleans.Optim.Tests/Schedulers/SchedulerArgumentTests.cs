using Orleans.Optim.Python;
using Orleans.Optim.Schedulers;

namespace Orleans.Optim.Tests.Schedulers;

/// <summary>Bad constructor arguments and bad steps: each error names the value and the fix, and changes nothing.</summary>
public sealed class SchedulerArgumentTests
{
    [Fact]
    public void UnknownSchedulerRejected()
    {
        var error = Assert.Throws<NotSupportedException>(() => LRSchedulers.Create("LambdaLR", Sgd(), Kwargs()));

        Assert.StartsWith("Scheduler 'LambdaLR' is not supported. Supported schedulers: StepLR, MultiStepLR,", error.Message);
    }

    [Fact]
    public void MissingArgumentRejected()
    {
        var optimizer = Sgd();

        var error = Assert.Throws<InvalidSchedulerArgumentException>(() => LRSchedulers.Create("StepLR", optimizer, Kwargs(("gamma", 0.5))));

        Assert.StartsWith("StepLR.__init__() missing 1 required positional argument: 'step_size'.", error.Reason);
        Assert.Equal("step_size", error.ParamName);
        AssertUnchanged(optimizer);
    }

    [Fact]
    public void UnexpectedKeywordRejected()
    {
        var error = Assert.Throws<InvalidSchedulerArgumentException>(
            () => LRSchedulers.Create("CosineAnnealingLR", Sgd(), Kwargs(("T_max", 10L), ("t_max", 10L))));

        Assert.StartsWith("CosineAnnealingLR.__init__() got an unexpected keyword argument 't_max'. Valid arguments after the optimizer are T_max, eta_min, last_epoch, verbose.", error.Reason);
    }

    [Fact]
    public void RepeatedArgumentRejected()
    {
        var error = Assert.Throws<InvalidSchedulerArgumentException>(
            () => LRSchedulers.Create("StepLR", Sgd(), [30L], Kwargs(("step_size", 30L))));

        Assert.StartsWith("StepLR.__init__() got multiple values for argument 'step_size'.", error.Reason);
    }

    [Fact]
    public void TooManyPositionalRejected()
    {
        var error = Assert.Throws<InvalidSchedulerArgumentException>(
            () => LRSchedulers.Create("ExponentialLR", Sgd(), [0.9, -1L, false, 1L], Kwargs()));

        Assert.StartsWith("ExponentialLR.__init__() takes from 3 to 5 positional arguments but 6 were given.", error.Reason);
    }

    [Fact]
    public void PositionalArgumentsBind()
    {
        var optimizer = Sgd();

        var scheduler = (StepLR)LRSchedulers.Create("StepLR", optimizer, [2, 0.5], Kwargs());

        Assert.Equal(2L, scheduler.StepSize);
        Assert.Equal(0.5, scheduler.Gamma);
    }

    [Theory]
    [InlineData("StepLR", "step_size", 0L, "Invalid step_size for StepLR: expected a nonzero number, found 0. Torch 1.13 accepts 0 but raises ZeroDivisionError at the second step.")]
    [InlineData("StepLR", "step_size", "30", "Invalid step_size for StepLR: expected a finite int or float, found str '30'.")]
    [InlineData("StepLR", "gamma", double.NaN, "Invalid gamma for StepLR: expected a finite int or float, found float nan.")]
    [InlineData("StepLR", "gamma", true, "Invalid gamma for StepLR: expected a finite int or float, found bool True.")]
    [InlineData("StepLR", "last_epoch", 1.0, "Invalid last_epoch for StepLR: expected an int, found float 1.0.")]
    [InlineData("StepLR", "verbose", 1L, "Invalid verbose for StepLR: expected True or False, found int 1.")]
    [InlineData("CosineAnnealingLR", "T_max", 0L, "Invalid T_max for CosineAnnealingLR: expected a nonzero number, found 0. Torch 1.13 accepts 0 but raises ZeroDivisionError at the second step.")]
    [InlineData("LinearLR", "start_factor", 1.5, "LinearLR: Starting multiplicative factor expected to be between 0 and 1. Pass a start_factor from 0 to 1.")]
    [InlineData("LinearLR", "end_factor", -0.5, "LinearLR: Ending multiplicative factor expected to be between 0 and 1. Pass an end_factor from 0 to 1.")]
    [InlineData("LinearLR", "start_factor", 0.0, "LinearLR: start_factor=0 makes torch 1.13 divide by zero at the first step (total_iters * start_factor is 0). Pass a small positive start_factor such as 1e-8.")]
    [InlineData("MultiStepLR", "milestones", 30L, "Invalid milestones for MultiStepLR: expected a list of int epoch indices, found int 30.")]
    public void InvalidArgumentRejected(string name, string argument, object? value, string message)
    {
        var optimizer = Sgd();
        var arguments = name switch
        {
            "StepLR" => Kwargs(("step_size", 30L)),
            "CosineAnnealingLR" => Kwargs(("T_max", 10L)),
            "MultiStepLR" => Kwargs(("milestones", new List<object?> { 3L })),
            _ => Kwargs(),
        };
        arguments.RemoveAll(pair => pair.Key == argument);
        arguments.Add(new(argument, value));

        var error = Assert.Throws<InvalidSchedulerArgumentException>(() => LRSchedulers.Create(name, optimizer, arguments));

        Assert.StartsWith(message, error.Reason);
        Assert.Equal(argument, error.ParamName);
        AssertUnchanged(optimizer);
    }

    [Theory]
    [InlineData(null, null, null, "total_steps", "OneCycleLR: You must define either total_steps OR (epochs AND steps_per_epoch).")]
    [InlineData(0L, null, null, "total_steps", "OneCycleLR: Expected positive integer total_steps, but got 0.")]
    [InlineData(10.0, null, null, "total_steps", "OneCycleLR: Expected positive integer total_steps, but got 10.0.")]
    [InlineData(null, 10L, null, "steps_per_epoch", "OneCycleLR: Expected positive integer steps_per_epoch, but got None.")]
    [InlineData(null, -1L, 5L, "epochs", "OneCycleLR: Expected positive integer epochs, but got -1.")]
    public void OneCycleStepCountRejected(object? totalSteps, object? epochs, object? stepsPerEpoch, string argument, string message)
    {
        var optimizer = Sgd();

        var error = Assert.Throws<InvalidSchedulerArgumentException>(() => LRSchedulers.Create(
            "OneCycleLR", optimizer, Kwargs(("max_lr", 0.1), ("total_steps", totalSteps), ("epochs", epochs), ("steps_per_epoch", stepsPerEpoch))));

        Assert.StartsWith(message, error.Reason);
        Assert.Equal(argument, error.ParamName);
        AssertUnchanged(optimizer);
    }

    [Theory]
    [InlineData("pct_start", 1L, "OneCycleLR: Expected float between 0 and 1 pct_start, but got 1. Pass a float such as 0.3, because torch 1.13 rejects an int here.")]
    [InlineData("pct_start", 1.5, "OneCycleLR: Expected float between 0 and 1 pct_start, but got 1.5.")]
    [InlineData("anneal_strategy", "cosine", "OneCycleLR: anneal_strategy must by one of 'cos' or 'linear', instead got 'cosine'.")]
    [InlineData("div_factor", 0.0, "Invalid div_factor for OneCycleLR: expected a nonzero number, found 0.0")]
    public void OneCycleArgumentRejected(string argument, object value, string message)
    {
        var optimizer = Sgd();

        var error = Assert.Throws<InvalidSchedulerArgumentException>(() => LRSchedulers.Create(
            "OneCycleLR", optimizer, Kwargs(("max_lr", 0.1), ("total_steps", 100L), (argument, value))));

        Assert.StartsWith(message, error.Reason);
        AssertUnchanged(optimizer);
    }

    [Fact]
    public void OneCycleMaxLrCountRejected()
    {
        var optimizer = Sgd();

        var error = Assert.Throws<InvalidSchedulerArgumentException>(() => LRSchedulers.Create(
            "OneCycleLR", optimizer, Kwargs(("max_lr", new List<object?> { 0.1, 0.2, 0.3 }), ("total_steps", 100L))));

        Assert.StartsWith("OneCycleLR: expected 2 values for max_lr, got 3.", error.Reason);
        AssertUnchanged(optimizer);
    }

    [Fact]
    public void OneCycleWithoutMomentumRejected()
    {
        var optimizer = new OptimizerParamGroups([Group(0.1), Group(0.05)], ["lr", "weight_decay"]);

        var error = Assert.Throws<InvalidSchedulerArgumentException>(() => new OneCycleLR(optimizer, 0.1, totalSteps: 100));

        Assert.StartsWith("OneCycleLR: optimizer must support momentum with `cycle_momentum` option enabled.", error.Reason);
        AssertUnchanged(optimizer);
    }

    [Fact]
    public void OneCycleWithoutBetasTupleRejected()
    {
        var optimizer = new OptimizerParamGroups([Group(0.1), Group(0.05)], ["lr", "betas"]);

        var error = Assert.Throws<InvalidSchedulerArgumentException>(() => new OneCycleLR(optimizer, 0.1, totalSteps: 100));

        Assert.Contains("param_groups[0]['betas'] is NoneType None, but OneCycleLR with cycle_momentum replaces betas[0] in a tuple", error.Reason);
        AssertUnchanged(optimizer);
    }

    [Fact]
    public void OneCycleStepPastEndRejected()
    {
        var optimizer = Sgd();
        var scheduler = new OneCycleLR(optimizer, 0.1, totalSteps: 3);
        for (int i = 0; i < 3; i++)
        {
            scheduler.Step();
        }

        var before = Copy(optimizer);

        var error = Assert.Throws<InvalidOperationException>(scheduler.Step);

        Assert.StartsWith("Tried to step 5 times. The specified number of total steps is 3.", error.Message);
        Assert.Equal(3, scheduler.LastEpoch);
        Assert.Equal(4, scheduler.StepCount);
        AssertGroupsEqual(before, optimizer);
    }

    [Fact]
    public void ResumeWithoutInitialLrRejected()
    {
        var optimizer = Sgd();

        var error = Assert.Throws<InvalidSchedulerArgumentException>(() => new ExponentialLR(optimizer, 0.9, lastEpoch: 5));

        Assert.StartsWith("ExponentialLR: param 'initial_lr' is not specified in param_groups[0] when resuming an optimizer.", error.Reason);
        AssertUnchanged(optimizer);
    }

    [Fact]
    public void NonNumericLrRejected()
    {
        var optimizer = new OptimizerParamGroups([new OrderedDictionary<string, object?> { ["lr"] = "0.1" }], ["lr"]);

        var error = Assert.Throws<InvalidSchedulerArgumentException>(() => new StepLR(optimizer, 3));

        Assert.StartsWith("StepLR: param_groups[0]['lr'] is str '0.1', but a scheduler needs a finite int or float.", error.Reason);
        Assert.False(optimizer.ParamGroups[0].ContainsKey("initial_lr"));
    }

    [Fact]
    public void ChangedLrToTextFailsStep()
    {
        var optimizer = Sgd();
        var scheduler = new ExponentialLR(optimizer, 0.9);
        optimizer.ParamGroups[1]["lr"] = "fast";

        var error = Assert.Throws<InvalidOperationException>(scheduler.Step);

        Assert.Equal("param_groups[1]['lr'] is str 'fast'; ExponentialLR needs a finite int or float", error.Message);
        Assert.Equal(0.1, optimizer.ParamGroups[0]["lr"]);
        Assert.Equal(0, scheduler.LastEpoch);
    }

    [Fact]
    public void SequentialMilestoneCountRejected()
    {
        var optimizer = Sgd();
        var warmup = new LinearLR(optimizer, 0.1, totalIters: 5);
        var decay = new ExponentialLR(optimizer, 0.9);
        var before = Copy(optimizer);

        var error = Assert.Throws<InvalidSchedulerArgumentException>(() => new SequentialLR(optimizer, [warmup, decay], [5, 10]));

        Assert.StartsWith(
            "SequentialLR: Sequential Schedulers expects number of schedulers provided to be one more than the number of milestone points, " +
            "but got number of schedulers 2 and the number of milestones to be equal to 2.",
            error.Reason);
        AssertGroupsEqual(before, optimizer);
        Assert.Equal(0, warmup.LastEpoch);
    }

    [Fact]
    public void SequentialOtherOptimizerRejected()
    {
        var optimizer = Sgd();
        var other = Sgd();
        var warmup = new LinearLR(optimizer, 0.1, totalIters: 5);
        var decay = new ExponentialLR(other, 0.9);

        var error = Assert.Throws<InvalidSchedulerArgumentException>(() => new SequentialLR(optimizer, [warmup, decay], [5]));

        Assert.StartsWith(
            "SequentialLR: Sequential Schedulers expects all schedulers to belong to the same optimizer, but got schedulers at index 1 to be different than the optimizer passed in.",
            error.Reason);
    }

    [Fact]
    public void SequentialUnsortedMilestonesRejected()
    {
        var optimizer = Sgd();
        LRScheduler[] schedulers = [new LinearLR(optimizer, 0.1, totalIters: 5), new ExponentialLR(optimizer, 0.9), new StepLR(optimizer, 3)];

        var error = Assert.Throws<InvalidSchedulerArgumentException>(() => new SequentialLR(optimizer, schedulers, [10, 5]));

        Assert.StartsWith("Invalid milestones for SequentialLR: expected a list of int epochs in increasing order, found list[int] [10, 5].", error.Reason);
    }

    [Fact]
    public void NestedSequentialRejected()
    {
        var optimizer = Sgd();
        var inner = new SequentialLR(optimizer, [new LinearLR(optimizer, 0.1, totalIters: 5), new ExponentialLR(optimizer, 0.9)], [5]);

        var error = Assert.Throws<InvalidSchedulerArgumentException>(
            () => new SequentialLR(optimizer, [new ExponentialLR(optimizer, 0.9), inner], [3]));

        Assert.Contains("the scheduler at index 1 is a SequentialLR, which cannot run inside a SequentialLR", error.Reason);
    }

    [Fact]
    public void TypedConstructorMatchesFactory()
    {
        var typedGroups = Sgd();
        var factoryGroups = Sgd();
        var typed = new CosineAnnealingLR(typedGroups, 7);
        var created = LRSchedulers.Create("CosineAnnealingLR", factoryGroups, Kwargs(("T_max", 7L)));

        for (int step = 0; step < 30; step++)
        {
            typed.Step();
            created.Step();
            Assert.True(PythonValues.StrictEquals(typed.StateDict(), created.StateDict()), $"The state dicts differ at step {step}.");
        }

        Assert.Equal(0L, typed.StateDict()["eta_min"]);
    }

    [Fact]
    public void IntLearningRateStaysInt()
    {
        var optimizer = new OptimizerParamGroups([Group(1L)], ["lr"]);
        var scheduler = new StepLR(optimizer, 2, gamma: 0.5);

        scheduler.Step();
        Assert.Equal(1L, optimizer.ParamGroups[0]["lr"]);
        scheduler.Step();

        Assert.Equal(0.5, optimizer.ParamGroups[0]["lr"]);
        Assert.Equal(1L, scheduler.BaseLrs[0]);
    }

    /// <summary>An SGD-like optimizer with two groups, lr 0.1 and 0.05, and momentum in its defaults.</summary>
    internal static OptimizerParamGroups Sgd() =>
        new([Group(0.1), Group(0.05)], ["lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", "foreach", "differentiable"]);

    internal static OrderedDictionary<string, object?> Group(object lr) => new()
    {
        ["lr"] = lr,
        ["momentum"] = 0L,
        ["dampening"] = 0L,
        ["weight_decay"] = 0L,
    };

    internal static List<KeyValuePair<string, object?>> Kwargs(params (string Key, object? Value)[] pairs) =>
        pairs.Select(pair => new KeyValuePair<string, object?>(pair.Key, pair.Value)).ToList();

    internal static List<OrderedDictionary<string, object?>> Copy(OptimizerParamGroups optimizer) =>
        optimizer.ParamGroups.Select(group => new OrderedDictionary<string, object?>(group)).ToList();

    internal static void AssertGroupsEqual(List<OrderedDictionary<string, object?>> expected, OptimizerParamGroups optimizer)
    {
        Assert.Equal(expected.Count, optimizer.ParamGroups.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Keys, optimizer.ParamGroups[i].Keys);
            foreach (var (key, value) in expected[i])
            {
                Assert.True(PythonValues.StrictEquals(value, optimizer.ParamGroups[i][key]), $"param_groups[{i}]['{key}'] changed to {PythonValues.Format(optimizer.ParamGroups[i][key])}.");
            }
        }
    }

    private static void AssertUnchanged(OptimizerParamGroups optimizer) => AssertGroupsEqual([Group(0.1), Group(0.05)], optimizer);
}
