using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Python;
using Orleans.Optim.Schedulers;

namespace Orleans.Optim.Tests.Schedulers;

/// <summary>
/// Replays each recorded torch 1.13 scheduler run and compares every step, the param groups and the state dicts
/// bit for bit, and resumes from torch's middle state dict, as JSON and as the .pt that torch.save wrote.
/// </summary>
public sealed class SchedulerReplayTests
{
    public static TheoryData<string> Cases => new(SchedulerCase.Names);

    [Fact]
    public void FixturesCoverEveryScheduler()
    {
        var covered = SchedulerCase.Names.SelectMany(name =>
        {
            var scheduler = SchedulerCase.Load(name).Document.GetProperty("scheduler");
            var children = scheduler.TryGetProperty("children", out var list) ? list.EnumerateArray().Select(c => c.GetProperty("name").GetString()!) : [];
            return children.Append(scheduler.GetProperty("name").GetString()!);
        }).ToHashSet();

        Assert.Equal(LRSchedulers.Names.Order(), covered.Order());
        Assert.All(SchedulerCase.Names, name => Assert.True(SchedulerCase.Load(name).NumSteps >= 120, $"{name} records fewer than 120 steps."));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SequenceMatchesTorch(string name)
    {
        var fixture = SchedulerCase.Load(name);
        var optimizer = fixture.NewOptimizer();

        var scheduler = fixture.NewScheduler(optimizer);

        fixture.AssertParamGroups(optimizer, "param_groups_after_constructor");
        fixture.AssertStep(optimizer, 0);
        Assert.Equal(fixture.NumSteps + 1, fixture.Steps.GetArrayLength());
        for (int step = 1; step <= fixture.NumSteps; step++)
        {
            scheduler.Step();
            fixture.AssertStep(optimizer, step);
            Assert.Equal(step, scheduler.LastEpoch);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void StateDictsMatchTorch(string name)
    {
        var fixture = SchedulerCase.Load(name);
        var optimizer = fixture.NewOptimizer();
        var scheduler = fixture.NewScheduler(optimizer);

        for (int step = 1; step <= fixture.NumSteps; step++)
        {
            scheduler.Step();
            if (step == fixture.MiddleStep)
            {
                PythonAssert.Equal(fixture.StateDict("middle"), scheduler.StateDict(), $"{name}: state_dict at step {step}");
                fixture.AssertParamGroups(optimizer, "param_groups", "middle");
            }
        }

        PythonAssert.Equal(fixture.StateDict("end"), scheduler.StateDict(), $"{name}: state_dict at the end");
        fixture.AssertParamGroups(optimizer, "param_groups", "end");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void StepAfterLastMatchesTorch(string name)
    {
        var fixture = SchedulerCase.Load(name);
        var optimizer = fixture.NewOptimizer();
        var scheduler = fixture.NewScheduler(optimizer);
        for (int step = 1; step <= fixture.NumSteps; step++)
        {
            scheduler.Step();
        }

        string? torchError = fixture.Document.GetProperty("error_after_last_step").GetString();
        if (torchError is null)
        {
            scheduler.Step();
            return;
        }

        var error = Assert.Throws<InvalidOperationException>(scheduler.Step);
        Assert.StartsWith(torchError, error.Message);
        PythonAssert.Equal(fixture.StateDict("end"), scheduler.StateDict(), $"{name}: state_dict after the failed step");
        fixture.AssertParamGroups(optimizer, "param_groups", "end");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ResumeFromTorchJsonContinues(string name)
    {
        var fixture = SchedulerCase.Load(name);

        var (optimizer, scheduler) = Resume(fixture, (OrderedDictionary<object, object?>)fixture.StateDict("middle")!);

        ContinueToEnd(fixture, optimizer, scheduler);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TorchPtReadsAsRecordedStateDict(string name)
    {
        var fixture = SchedulerCase.Load(name);

        foreach (string label in new[] { "middle", "end" })
        {
            var loaded = PtReader.ReadFile(fixture.PtPath(label));
            PythonAssert.Equal(fixture.StateDict(label), loaded, $"{name}: torch.load of the {label} .pt");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ResumeFromTorchPtContinues(string name)
    {
        var fixture = SchedulerCase.Load(name);

        var (optimizer, scheduler) = Resume(fixture, PtReader.ReadFile(fixture.PtPath("middle")));

        ContinueToEnd(fixture, optimizer, scheduler);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void WrittenStateDictReadsBackEqual(string name)
    {
        var fixture = SchedulerCase.Load(name);
        var scheduler = fixture.NewScheduler(fixture.NewOptimizer());
        var state = scheduler.StateDict();
        using var stream = new MemoryStream();

        PtWriter.Write(stream, state);
        stream.Position = 0;
        var reread = PtReader.Read(stream);

        PythonAssert.Equal(state, reread, $"{name}: state_dict written and read back");
        var binary = PythonBinary.Decode(PythonBinary.Encode(state));
        PythonAssert.Equal(state, binary, $"{name}: state_dict through PythonBinary");
    }

    /// <summary>Builds the case afresh, loads the middle param groups as optimizer.load_state_dict would, then the scheduler state.</summary>
    internal static (OptimizerParamGroups Optimizer, LRScheduler Scheduler) Resume(SchedulerCase fixture, OrderedDictionary<object, object?> state)
    {
        var optimizer = fixture.NewOptimizer();
        var scheduler = fixture.NewScheduler(optimizer);
        fixture.LoadParamGroups(optimizer, "middle");
        scheduler.LoadStateDict(state);
        return (optimizer, scheduler);
    }

    private static void ContinueToEnd(SchedulerCase fixture, OptimizerParamGroups optimizer, LRScheduler scheduler)
    {
        PythonAssert.Equal(fixture.StateDict("middle"), scheduler.StateDict(), $"{fixture.Name}: state_dict after loading");
        for (int step = fixture.MiddleStep + 1; step <= fixture.NumSteps; step++)
        {
            scheduler.Step();
            fixture.AssertStep(optimizer, step);
        }

        PythonAssert.Equal(fixture.StateDict("end"), scheduler.StateDict(), $"{fixture.Name}: state_dict at the end after resuming");
    }
}
