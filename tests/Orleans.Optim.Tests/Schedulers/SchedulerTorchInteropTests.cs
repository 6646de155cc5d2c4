using System.Text.Json;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Python;
using Orleans.Optim.Schedulers;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Schedulers;

/// <summary>
/// Writes this library's scheduler state dicts with <see cref="PtWriter"/> and resumes real torch 1.13 from them
/// (<c>scheduler.load_state_dict(torch.load(path))</c> in <c>generate_schedulers.py continue</c>).
/// </summary>
public sealed class SchedulerTorchInteropTests : IDisposable
{
    private static readonly Lazy<string> GeneratorScript = new(() => File.ReadAllText(Path.Combine(SchedulerCase.Folder, "generate_schedulers.py")));

    private readonly string _folder = Path.Combine(Path.GetTempPath(), "orleans-optim-schedulers-" + Guid.NewGuid().ToString("N"));

    public SchedulerTorchInteropTests() => Directory.CreateDirectory(_folder);

    public static TheoryData<string> Cases => new(SchedulerCase.Names);

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [MemberData(nameof(Cases))]
    public void TorchResumesFromWrittenStateDict(string name)
    {
        var fixture = SchedulerCase.Load(name);
        var scheduler = fixture.NewScheduler(fixture.NewOptimizer());
        for (int step = 1; step <= fixture.MiddleStep; step++)
        {
            scheduler.Step();
        }

        string path = Path.Combine(_folder, name + ".pt");
        PtWriter.WriteFile(path, scheduler.StateDict());

        var result = RunTorch("continue", name, path);

        var steps = result.GetProperty("steps");
        Assert.Equal(fixture.NumSteps - fixture.MiddleStep, steps.GetArrayLength());
        for (int step = fixture.MiddleStep + 1; step <= fixture.NumSteps; step++)
        {
            fixture.AssertRecordedStep(fixture.Steps[step], steps[step - fixture.MiddleStep - 1], step);
        }

        var torchEnd = TypedJson.ToPython(result.GetProperty("state_dict"));
        PythonAssert.Equal(fixture.StateDict("end"), torchEnd, $"{name}: torch's state_dict at the end after loading this library's file");
    }

    [Fact]
    public void WrittenAnnealFunctionLoadsAsBoundMethod()
    {
        string path = Path.Combine(_folder, "methods.pt");
        var state = new OrderedDictionary<object, object?>
        {
            ["cos"] = PythonBoundMethod.OneCycleAnnealingCos,
            ["linear"] = PythonBoundMethod.OneCycleAnnealingLinear,
            ["cos_again"] = PythonBoundMethod.OneCycleAnnealingCos,
            ["milestones"] = PythonCounter.FromElements([30L, 80L, 80L]),
        };
        PtWriter.WriteFile(path, state);

        string output = PythonTorch.Run(
            """
            import collections, json, sys, torch
            state = torch.load(sys.argv[1])
            print(json.dumps({
                "types": [type(value).__name__ for value in state.values()],
                "owners": [type(getattr(value, "__self__", None)).__name__ for value in state.values()],
                "cos": state["cos"](1.0, 0.0, 0.25),
                "linear": state["linear"](1.0, 0.0, 0.25),
                "same": state["cos"] is state["cos_again"],
                "milestones": [[key, count] for key, count in state["milestones"].items()],
            }))
            """,
            [path]);
        using var document = JsonDocument.Parse(output);
        var root = document.RootElement;

        Assert.Equal(["method", "method", "method", "Counter"], root.GetProperty("types").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal("OneCycleLR", root.GetProperty("owners")[0].GetString());
        Assert.Equal("0.8535533905932737", root.GetProperty("cos").GetRawText());
        Assert.Equal("0.75", root.GetProperty("linear").GetRawText());
        Assert.True(root.GetProperty("same").GetBoolean(), "A method written twice should load as one object, as the pickle memo shares it.");
        Assert.Equal("[[30,1],[80,2]]", root.GetProperty("milestones").GetRawText().Replace(" ", string.Empty, StringComparison.Ordinal));
    }

    private static JsonElement RunTorch(params string[] arguments)
    {
        string output = PythonTorch.Run(GeneratorScript.Value, arguments);
        using var document = JsonDocument.Parse(output);
        return document.RootElement.Clone();
    }
}
