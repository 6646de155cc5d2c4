using System.Text.Json;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;
using Orleans.Optim.Schedulers;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Schedulers;

/// <summary>
/// Schedulers run by the cluster's coordinator: the same learning rates as PyTorch at every step, applied by the
/// shards, and a checkpoint taken mid-schedule resumes on the same sequence.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterSchedulerTests(ClusterFixture fixture)
{
    public static TheoryData<string> Cases() => [.. SchedulerCase.Names];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task CoordinatorMatchesTorchSequence(string name)
    {
        var torchCase = SchedulerCase.Load(name);
        var optimizer = await CreateAsync(torchCase);

        await optimizer.SetSchedulerAsync(Spec(torchCase.Document.GetProperty("scheduler")));
        torchCase.AssertParamGroups(await GroupsAsync(optimizer), "param_groups_after_constructor");
        torchCase.AssertStep(await GroupsAsync(optimizer), 0);

        for (int step = 1; step <= torchCase.MiddleStep; step++)
        {
            await optimizer.SchedulerStepAsync();
            torchCase.AssertStep(await GroupsAsync(optimizer), step);
        }

        // Resume mid-schedule in a fresh optimizer, in torch's order: scheduler, optimizer state, scheduler state.
        var resumed = await CreateAsync(torchCase);
        await resumed.SetSchedulerAsync(Spec(torchCase.Document.GetProperty("scheduler")));
        await resumed.LoadStateDictAsync(await optimizer.StateDictAsync());
        await resumed.LoadSchedulerStateDictAsync(await optimizer.SchedulerStateDictAsync());
        PythonAssert.Equal(torchCase.StateDict("middle"), await resumed.SchedulerStateDictAsync(), $"{name}: resumed state dict at the middle");

        for (int step = torchCase.MiddleStep + 1; step <= torchCase.NumSteps; step++)
        {
            await resumed.SchedulerStepAsync();
            torchCase.AssertStep(await GroupsAsync(resumed), step);
        }

        PythonAssert.Equal(torchCase.StateDict("end"), await resumed.SchedulerStateDictAsync(), $"{name}: state dict at the end");
    }

    [Fact]
    public async Task ShardsStepWithScheduledRate()
    {
        var spec = new OptimizerSpec
        {
            Algorithm = "SGD",
            DefaultOptions = [new("lr", 0.1)],
            Groups = [new ParamGroupSpec([], [new ParameterSpec(null, [3])])],
            MaxShardElements = 2,
        };
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, NewName(), spec, [[1f, 2f, 3f]]);
        var local = new LocalOptimizer(spec, [[1f, 2f, 3f]]);
        await optimizer.SetSchedulerAsync(SchedulerSpec.Parse("StepLR(step_size=2, gamma=0.5)"));
        local.SetHyperparameter(0, "initial_lr", 0.1);

        for (int step = 0; step < 6; step++)
        {
            float[] gradient = [1f, -1f, 0.5f];
            var updated = await optimizer.StepAsync(0, [gradient]);
            local.Step([gradient]);
            Assert.Null(StateDictComparison.ArrayDifference(local.Parameter(0), updated[0]));

            var lrs = await optimizer.SchedulerStepAsync();
            local.SetHyperparameter(0, "lr", lrs[0]);
        }

        Assert.Equal(0.0125, (await optimizer.GetParamGroupsAsync())[0]["lr"]);
        Assert.Null(StateDictComparison.FirstDifference(local.StateDict(), await optimizer.StateDictAsync()));
    }

    [Fact]
    public async Task InvalidSchedulerChangesNothing()
    {
        var spec = new OptimizerSpec { Algorithm = "Adam", Groups = [new ParamGroupSpec([], [new ParameterSpec(null, [2])])] };
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, NewName(), spec, [[1f, 2f]]);
        var before = await optimizer.StateDictAsync();

        var unknown = await Assert.ThrowsAsync<Wire.OptimizerFaultException>(() => optimizer.SetSchedulerAsync(SchedulerSpec.Parse("LambdaLR(lr_lambda=1)")));
        var badArgument = await Assert.ThrowsAsync<Wire.OptimizerFaultException>(() => optimizer.SetSchedulerAsync(SchedulerSpec.Parse("StepLR(step_size=0)")));
        var noScheduler = await Assert.ThrowsAsync<Wire.OptimizerFaultException>(() => optimizer.SchedulerStepAsync());

        Assert.Contains("Scheduler 'LambdaLR' is not supported", unknown.Message);
        Assert.Contains("step_size", badArgument.Message);
        Assert.Contains("has no learning-rate scheduler; attach one first", noScheduler.Message);
        Assert.Null(StateDictComparison.FirstDifference(before, await optimizer.StateDictAsync()));
    }

    [Fact]
    public void SpecParsesTorchSyntax()
    {
        var spec = SchedulerSpec.Parse("SequentialLR(schedulers=[LinearLR(start_factor=0.1, total_iters=3), CosineAnnealingLR(T_max=17, eta_min=1e-5)], milestones=[3])");

        Assert.Equal("SequentialLR", spec.Name);
        Assert.Equal(2, spec.Schedulers.Count);
        Assert.Equal(3L, spec.Schedulers[0].Arguments[1].Value);
        Assert.Equal(1e-5, spec.Schedulers[1].Arguments[1].Value);
        Assert.Equal("SequentialLR(schedulers=[LinearLR(start_factor=0.1, total_iters=3), CosineAnnealingLR(T_max=17, eta_min=1e-05)], milestones=[3])", spec.ToString());
        var error = Assert.Throws<FormatException>(() => SchedulerSpec.Parse("StepLR(step_size=5 gamma=0.5)"));
        Assert.Contains("at position 19: expected ',' or ')'", error.Message);
    }

    private async Task<ClusterOptimizer> CreateAsync(SchedulerCase torchCase)
    {
        var optimizerJson = torchCase.Document.GetProperty("optimizer");
        var groups = optimizerJson.GetProperty("initial_param_groups").EnumerateArray().Select(TypedJson.ToGroup).ToList();
        var spec = new OptimizerSpec
        {
            Algorithm = optimizerJson.GetProperty("name").GetString()!,
            Groups = groups.Select(g => new ParamGroupSpec(g.ToList(), [new ParameterSpec(null, [2])])).ToList(),
        };
        return await ClusterOptimizer.CreateAsync(fixture.Client, NewName(), spec, groups.Select(_ => new float[2]).ToList());
    }

    private static async Task<OptimizerParamGroups> GroupsAsync(ClusterOptimizer optimizer)
    {
        var groups = (await optimizer.GetParamGroupsAsync()).Select(g => new OrderedDictionary<string, object?>(g)).ToList();
        return new OptimizerParamGroups(groups, []);
    }

    private static SchedulerSpec Spec(JsonElement element)
    {
        var kwargs = ((OrderedDictionary<object, object?>)TypedJson.ToPython(element.GetProperty("kwargs"))!)
            .Select(pair => new KeyValuePair<string, object?>((string)pair.Key, pair.Value))
            .ToList();
        var children = element.TryGetProperty("children", out var list) ? list.EnumerateArray().Select(Spec).ToList() : [];
        return new SchedulerSpec(element.GetProperty("name").GetString()!, kwargs, children);
    }

    private static string NewName() => "scheduler-" + Guid.NewGuid().ToString("N");
}
