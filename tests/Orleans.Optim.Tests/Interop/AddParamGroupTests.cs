using System.Text.Json;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Engine;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Layout;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Interop;

/// <summary>add_param_group on a running cluster optimizer gives torch's parameters and state dict.</summary>
[Collection(ClusterCollection.Name)]
public sealed class AddParamGroupTests(ClusterFixture fixture) : IDisposable
{
    private const int AddBeforeStep = 3;
    private const int StepCount = 5;

    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-add-group-").FullName;

    [Theory]
    [InlineData("SGD", """{"lr": 0.1, "momentum": 0.9}""", """{"lr": 0.05, "nesterov": true}""")]
    [InlineData("Adam", """{"lr": 0.01}""", """{"amsgrad": true, "lr": 0.002}""")]
    [InlineData("AdamW", """{"lr": 0.01, "weight_decay": 0.1}""", """{"betas": [0.8, 0.9]}""")]
    public async Task AddedGroupMatchesTorch(string algorithm, string defaultsJson, string addedJson)
    {
        long[][] shapes = [[4, 3], [5]];
        long[][] addedShapes = [[2, 6], [9]];
        var random = new Random(5);
        float[][] initial = shapes.Select(s => RandomTensor(random, s)).ToArray();
        float[][] added = addedShapes.Select(s => RandomTensor(random, s)).ToArray();
        var gradients = Enumerable.Range(1, StepCount).Select(step =>
            (step < AddBeforeStep ? shapes : [.. shapes, .. addedShapes])
                .Select((s, i) => step == 4 && i == 2 ? null : RandomTensor(random, s)).ToArray()).ToList();

        var spec = new OptimizerSpec
        {
            Algorithm = algorithm,
            DefaultOptions = Options(defaultsJson),
            Groups = [new ParamGroupSpec([], [new ParameterSpec(null, shapes[0]), new ParameterSpec(null, shapes[1])])],
            MaxShardElements = 7,
        };
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, $"add-group-{Guid.NewGuid():N}", spec, initial);
        var local = new LocalOptimizer(spec, initial.Select(v => (float[])v.Clone()).ToList());
        var addedGroup = new ParamGroupSpec(Options(addedJson), addedShapes.Select(s => new ParameterSpec(null, s)).ToList());
        var clusterParams = new List<float[][]>();
        for (int step = 1; step <= StepCount; step++)
        {
            if (step == AddBeforeStep)
            {
                await optimizer.AddParamGroupAsync(addedGroup, added);
                local.AddParamGroup(addedGroup, added.Select(v => (float[])v.Clone()).ToList());
            }

            clusterParams.Add(await optimizer.StepAsync(0, gradients[step - 1]));
            local.Step(gradients[step - 1]);
        }

        var torch = RunTorch(algorithm, defaultsJson, addedJson, shapes, addedShapes, initial, added, gradients);
        var torchParams = (List<object?>)torch["params_after"]!;
        for (int step = 0; step < StepCount; step++)
        {
            var expected = (List<object?>)torchParams[step]!;
            Assert.Equal(expected.Count, clusterParams[step].Length);
            for (int p = 0; p < expected.Count; p++)
            {
                Assert.Null(StateDictComparison.ArrayDifference(((Tensor)expected[p]!).AsFloats(), clusterParams[step][p]));
            }
        }

        var torchState = OptimizerStateDict.FromPython(torch["state_dict"]);
        Assert.Null(StateDictComparison.FirstDifference(torchState, await optimizer.StateDictAsync()));
        Assert.Null(StateDictComparison.FirstDifference(torchState, local.StateDict()));
        Assert.Equal([0L, 1L], torchState.ParamIds(0));
        Assert.Equal([2L, 3L], torchState.ParamIds(1));
    }

    [Fact]
    public async Task AddedGroupWithTakenNameRejected()
    {
        var spec = new OptimizerSpec
        {
            Algorithm = "Adam",
            Groups = [new ParamGroupSpec([], [new ParameterSpec("w", [2])])],
        };
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, $"add-group-{Guid.NewGuid():N}", spec, [new float[2]]);

        var error = await Assert.ThrowsAsync<Wire.OptimizerFaultException>(() =>
            optimizer.AddParamGroupAsync(new ParamGroupSpec([], [new ParameterSpec("w", [3])]), [new float[3]]));

        Assert.Contains("Parameter name 'w' appears twice", error.Message);
        Assert.Single((await optimizer.StateDictAsync()).ParamGroups);
    }

    [Fact]
    public async Task OtherWorkerPicksUpAddedGroup()
    {
        var spec = new OptimizerSpec
        {
            Algorithm = "SGD",
            DefaultOptions = [new("lr", 0.5)],
            Groups = [new ParamGroupSpec([], [new ParameterSpec(null, [2])])],
            WorldSize = 2,
        };
        var first = await ClusterOptimizer.CreateAsync(fixture.Client, $"add-group-{Guid.NewGuid():N}", spec, [new float[2]]);
        var second = await ClusterOptimizer.AttachAsync(fixture.Client, first.Name);
        await Task.WhenAll(first.StepAsync(0, [[1f, 1f]]), second.StepAsync(1, [[3f, 3f]]));

        await first.AddParamGroupAsync(new ParamGroupSpec([], [new ParameterSpec(null, [3])]), [[1f, 2f, 3f]]);
        var results = await Task.WhenAll(first.StepAsync(0, [[1f, 1f], [2f, 2f, 2f]]), second.StepAsync(1, [[1f, 1f], [0f, 0f, 0f]]));

        Assert.Equal(2, second.Layout.GroupCount);
        Assert.Equal([-1.5f, -1.5f], results[1][0]);
        Assert.Equal([0.5f, 1.5f, 2.5f], results[1][1]);
        Assert.Equal(results[0][1], results[1][1]);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private OrderedDictionary<object, object?> RunTorch(
        string algorithm, string defaultsJson, string addedJson, long[][] shapes, long[][] addedShapes, float[][] initial, float[][] added, List<float[]?[]> gradients)
    {
        string specFile = Path.Combine(_folder, "spec.json");
        File.WriteAllText(specFile, JsonSerializer.Serialize(new
        {
            optimizer = algorithm,
            defaults = JsonSerializer.Deserialize<JsonElement>(defaultsJson),
            groups = new[] { new { options = new { }, count = 2 } },
            added_group = new { options = JsonSerializer.Deserialize<JsonElement>(addedJson), count = 2 },
            add_before_step = AddBeforeStep,
        }));
        long[][] allShapes = [.. shapes, .. addedShapes];
        string inputsFile = Path.Combine(_folder, "inputs.pt");
        PtWriter.WriteFile(inputsFile, new OrderedDictionary<object, object?>
        {
            ["params"] = initial.Select((v, i) => (object?)Tensor.FromFloats(v, shapes[i])).ToList(),
            ["added_params"] = added.Select((v, i) => (object?)Tensor.FromFloats(v, addedShapes[i])).ToList(),
            ["grads"] = gradients.Select(step => (object?)step.Select((g, i) => g is null ? null : (object?)Tensor.FromFloats(g, allShapes[i])).ToList()).ToList(),
        });
        string outFile = Path.Combine(_folder, "out.pt");
        PythonTorch.Run(
            File.ReadAllText(Path.Combine(RepositoryPaths.Root, "tests", "Orleans.Optim.Tests", "Interop", "add_param_group.py")),
            [specFile, inputsFile, outFile]);
        return PtReader.ReadFile(outFile);
    }

    private static List<KeyValuePair<string, object?>> Options(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.EnumerateObject()
            .Select(p => new KeyValuePair<string, object?>(p.Name, ReferenceCase.ReadValue(p.Value, p.Name == "betas" ? "tuple" : null)))
            .ToList();
    }

    private static float[] RandomTensor(Random random, long[] shape) =>
        Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
}
