using Orleans.Optim.Python;
using Orleans.Optim.Schedulers;
using Orleans.Optim.StateDicts;
using static Orleans.Optim.Tests.Schedulers.SchedulerArgumentTests;

namespace Orleans.Optim.Tests.Schedulers;

/// <summary>Bad state dicts: each error names the key, what was expected and what was found, and the scheduler stays as it was.</summary>
public sealed class SchedulerStateDictErrorTests
{
    [Fact]
    public void MissingKeyRejected()
    {
        var scheduler = new StepLR(Sgd(), 3);
        var state = scheduler.StateDict();
        state.Remove("gamma");

        var error = LoadFails(scheduler, state);

        Assert.StartsWith(
            "Invalid StepLR state dict: state_dict has no key 'gamma' (a StepLR state dict has the keys step_size, gamma, base_lrs, last_epoch, verbose, _step_count, _get_lr_called_within_step, _last_lr). " +
            "Load a state dict that StepLR.state_dict() returned",
            error.Message);
    }

    [Fact]
    public void UnknownKeyRejected()
    {
        var scheduler = new CosineAnnealingLR(Sgd(), 10);
        var state = new StepLR(Sgd(), 3).StateDict();

        var error = LoadFails(scheduler, state);

        Assert.StartsWith("Invalid CosineAnnealingLR state dict: state_dict has the key str 'step_size', which a CosineAnnealingLR state dict does not have", error.Message);
    }

    [Fact]
    public void WrongTypeRejected()
    {
        var scheduler = new StepLR(Sgd(), 3);
        var state = scheduler.StateDict();
        state["gamma"] = "0.1";

        var error = LoadFails(scheduler, state);

        Assert.StartsWith("Invalid StepLR state dict: state_dict['gamma'] is str '0.1'; expected a finite int or float.", error.Message);
    }

    [Fact]
    public void GroupCountMismatchRejected()
    {
        var scheduler = new ExponentialLR(Sgd(), 0.9);
        var state = scheduler.StateDict();
        state["base_lrs"] = new List<object?> { 0.1 };

        var error = LoadFails(scheduler, state);

        Assert.StartsWith("Invalid ExponentialLR state dict: state_dict['base_lrs'] has 1 values, but the optimizer has 2 param groups.", error.Message);
    }

    [Fact]
    public void MilestonesAsPlainDictRejected()
    {
        var scheduler = new MultiStepLR(Sgd(), [3, 5]);
        var state = scheduler.StateDict();
        state["milestones"] = new OrderedDictionary<object, object?>((PythonCounter)state["milestones"]!);

        var error = LoadFails(scheduler, state);

        Assert.StartsWith("Invalid MultiStepLR state dict: state_dict['milestones'] is dict {3: 1, 5: 1}; expected a collections.Counter of int epochs to int counts.", error.Message);
    }

    [Fact]
    public void AnnealFunctionAsTextRejected()
    {
        var scheduler = new OneCycleLR(Sgd(), 0.1, totalSteps: 100);
        var state = scheduler.StateDict();
        state["anneal_func"] = "cos";

        var error = LoadFails(scheduler, state);

        Assert.StartsWith(
            "Invalid OneCycleLR state dict: state_dict['anneal_func'] is str 'cos'; expected the bound method OneCycleLR._annealing_cos or OneCycleLR._annealing_linear.",
            error.Message);
    }

    [Fact]
    public void BetasStateIntoSgdRejected()
    {
        var adam = new OptimizerParamGroups(
            [Adam(1e-3), Adam(5e-4)], ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused"]);
        var adamState = new OneCycleLR(adam, 0.01, totalSteps: 100).StateDict();
        var scheduler = new OneCycleLR(Sgd(), 0.1, totalSteps: 100);

        var error = LoadFails(scheduler, adamState);

        Assert.StartsWith(
            "Invalid OneCycleLR state dict: state_dict['use_beta1'] is True, but the optimizer has no 'betas' in its defaults, so the state dict comes from a OneCycleLR of another kind of optimizer.",
            error.Message);
    }

    [Fact]
    public void UseBeta1LoadedIntoSchedulerWithoutIt()
    {
        // A OneCycleLR made with cycle_momentum=False has no use_beta1; torch appends it at the end when a state dict brings it.
        var optimizer = Sgd();
        var withMomentum = new OneCycleLR(Sgd(), 0.1, totalSteps: 100).StateDict();
        var scheduler = new OneCycleLR(optimizer, 0.1, totalSteps: 100, cycleMomentum: false);

        scheduler.LoadStateDict(withMomentum);

        Assert.Equal("_last_lr", scheduler.StateDict().GetAt(scheduler.StateDict().Count - 2).Key);
        Assert.Equal("use_beta1", scheduler.StateDict().GetAt(scheduler.StateDict().Count - 1).Key);
        Assert.True(scheduler.CycleMomentum);
    }

    [Fact]
    public void SequentialChildErrorChangesNothing()
    {
        var optimizer = Sgd();
        var warmup = new LinearLR(optimizer, 0.1, totalIters: 5);
        var decay = new CosineAnnealingLR(optimizer, 20);
        var scheduler = new SequentialLR(optimizer, [warmup, decay], [5]);
        for (int i = 0; i < 8; i++)
        {
            scheduler.Step();
        }

        var state = scheduler.StateDict();
        var bad = scheduler.StateDict();
        bad["last_epoch"] = 2L;
        var badChildren = (List<object?>)bad["_schedulers"]!;
        ((OrderedDictionary<object, object?>)badChildren[0]!)["start_factor"] = 0.5;
        ((OrderedDictionary<object, object?>)badChildren[1]!)["T_max"] = 0L;

        var error = LoadFails(scheduler, bad);

        Assert.StartsWith("Invalid CosineAnnealingLR state dict: state_dict['_schedulers'][1]['T_max'] is int 0; expected a nonzero number", error.Message);
        PythonAssert.Equal(state, scheduler.StateDict(), "state_dict after the failed load");
        Assert.Equal(0.1, warmup.StartFactor);
    }

    [Fact]
    public void SequentialSchedulerCountRejected()
    {
        var optimizer = Sgd();
        var scheduler = new SequentialLR(optimizer, [new LinearLR(optimizer, 0.1, totalIters: 5), new ExponentialLR(optimizer, 0.9)], [5]);
        var state = scheduler.StateDict();
        ((List<object?>)state["_schedulers"]!).RemoveAt(1);

        var error = LoadFails(scheduler, state);

        Assert.StartsWith("Invalid SequentialLR state dict: state_dict['_schedulers'] has 1 state dicts, but this SequentialLR has 2 schedulers.", error.Message);
    }

    [Fact]
    public void SequentialLastLrIsSharedWithStepper()
    {
        var optimizer = Sgd();
        var scheduler = new SequentialLR(optimizer, [new LinearLR(optimizer, 0.1, totalIters: 5), new ExponentialLR(optimizer, 0.9)], [5]);
        for (int i = 0; i < 7; i++)
        {
            scheduler.Step();
        }

        var state = scheduler.StateDict();
        var children = (List<object?>)state["_schedulers"]!;

        Assert.Same(((OrderedDictionary<object, object?>)children[1]!)["_last_lr"], state["_last_lr"]);
        scheduler.LoadStateDict(state);
        var reloaded = scheduler.StateDict();
        Assert.Same(((OrderedDictionary<object, object?>)((List<object?>)reloaded["_schedulers"]!)[1]!)["_last_lr"], reloaded["_last_lr"]);
    }

    private static OrderedDictionary<string, object?> Adam(double lr) => new()
    {
        ["lr"] = lr,
        ["betas"] = new object?[] { 0.9, 0.999 },
        ["eps"] = 1e-8,
        ["weight_decay"] = 0L,
    };

    private static StateDictException LoadFails(LRScheduler scheduler, OrderedDictionary<object, object?> state)
    {
        var before = scheduler.StateDict();
        var groups = Copy(scheduler.Optimizer);

        var error = Assert.Throws<StateDictException>(() => scheduler.LoadStateDict(state));

        PythonAssert.Equal(before, scheduler.StateDict(), $"{scheduler.Name} state_dict after the failed load");
        AssertGroupsEqual(groups, scheduler.Optimizer);
        return error;
    }
}
