using Orleans.Optim.StateDicts;

namespace Orleans.Optim.Schedulers;

/// <summary>
/// A learning-rate scheduler of torch 1.13's <c>torch.optim.lr_scheduler</c>, working on the param groups of one
/// optimizer.
/// </summary>
/// <remarks>
/// <para>
/// Use it as in torch: create it against the optimizer's current groups (its constructor already takes the first
/// step and sets <c>lr</c>), then call <see cref="Step"/> once after each optimizer step. Each call writes the new
/// <c>lr</c> (and, for <see cref="OneCycleLR"/>, <c>momentum</c> or <c>betas</c>) into the dicts of
/// <see cref="OptimizerParamGroups.ParamGroups"/>. The caller then gives those values to the optimizer.
/// </para>
/// <para>
/// The values are those torch computes, bit for bit, with the same Python types, and <see cref="StateDict"/> returns
/// torch's <c>state_dict()</c> with torch's keys, order and types. A failed call changes nothing: not the scheduler
/// and not the groups.
/// </para>
/// </remarks>
public abstract class LRScheduler
{
    private protected LRScheduler(OptimizerParamGroups optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        Optimizer = optimizer;
    }

    /// <summary>Torch's class name, such as <c>StepLR</c>.</summary>
    public abstract string Name { get; }

    /// <summary>The param groups this scheduler changes.</summary>
    public OptimizerParamGroups Optimizer { get; }

    /// <summary>Torch's <c>last_epoch</c>: the number of steps taken, counting the constructor's step as 0.</summary>
    public abstract long LastEpoch { get; }

    /// <summary>Torch's <c>get_last_lr()</c>: each group's <c>lr</c> after the last step, as a Python int or float.</summary>
    public abstract IReadOnlyList<object?> LastLr { get; }

    /// <summary>Takes one step, as torch's <c>scheduler.step()</c>, and writes the new values into the param groups.</summary>
    /// <exception cref="InvalidOperationException">
    /// Torch would raise here: a param group lacks a value, a division by zero, or a <see cref="OneCycleLR"/> stepped
    /// past its total steps. Nothing was changed.
    /// </exception>
    public abstract void Step();

    /// <summary>
    /// Returns torch's <c>scheduler.state_dict()</c> as a new Python value tree, with torch's keys in torch's order.
    /// </summary>
    /// <remarks>
    /// Ints are <see cref="long"/>, floats <see cref="double"/> and lists <c>List&lt;object?&gt;</c>, as
    /// <see cref="Python.PythonValues"/> describes. MultiStepLR's <c>milestones</c> is a
    /// <see cref="Python.PythonCounter"/>, OneCycleLR's <c>anneal_func</c> a <see cref="Python.PythonBoundMethod"/>,
    /// and SequentialLR's <c>_schedulers</c> a list of its schedulers' state dicts. The tree can be written with
    /// <see cref="Formats.Pt.PtWriter"/>, and <c>scheduler.load_state_dict(torch.load(path))</c> loads it in torch.
    /// </remarks>
    public abstract OrderedDictionary<object, object?> StateDict();

    /// <summary>
    /// Loads a state dict as torch's <c>scheduler.load_state_dict()</c> does, after checking that it has exactly the
    /// keys, types and list lengths that this scheduler's state dict has.
    /// </summary>
    /// <remarks>
    /// Like torch, it restores the scheduler only. Load the optimizer's state dict too, which contains the groups'
    /// <c>lr</c>, <c>initial_lr</c> and, for OneCycleLR, <c>max_lr</c>, <c>min_lr</c> and the momentum values.
    /// </remarks>
    /// <exception cref="StateDictException">The state dict does not fit this scheduler. Nothing was changed.</exception>
    public void LoadStateDict(OrderedDictionary<object, object?> stateDict)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        PrepareLoad(stateDict, "state_dict")();
    }

    /// <summary>Returns the scheduler's name and <c>last_epoch</c>.</summary>
    public override string ToString() => $"{Name}(last_epoch={LastEpoch})";

    /// <summary>Checks <paramref name="stateDict"/> and returns the action that loads it, which cannot fail.</summary>
    /// <exception cref="StateDictException">The state dict does not fit this scheduler.</exception>
    private protected abstract Action PrepareLoad(OrderedDictionary<object, object?> stateDict, string path);

    /// <summary>Calls <see cref="PrepareLoad"/> on another scheduler, for <see cref="SequentialLR"/>.</summary>
    private protected static Action PrepareLoadOf(LRScheduler scheduler, OrderedDictionary<object, object?> stateDict, string path) =>
        scheduler.PrepareLoad(stateDict, path);
}
