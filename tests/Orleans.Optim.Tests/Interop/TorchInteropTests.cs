using System.Text.Json;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Engine;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Layout;
using Orleans.Optim.Python;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Interop;

/// <summary>
/// Real PyTorch 1.13 loads the cluster's exported optimizer into the matching torch.optim class and continues with
/// the same results as the cluster.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class TorchInteropTests(ClusterFixture fixture) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-interop-").FullName;

    public static TheoryData<string, string> Optimizers() => new()
    {
        { "SGD", """{"lr": 0.1, "momentum": 0.9, "nesterov": true}""" },
        { "SGD", """{"lr": 0.1, "weight_decay": 0.01}""" },
        { "Adam", """{"lr": 0.01, "amsgrad": true, "weight_decay": 0.01}""" },
        { "Adam", """{"lr": 0.003, "betas": [0.8, 0.99], "maximize": true}""" },
        { "AdamW", """{"lr": 0.01, "amsgrad": true}""" },
        { "Adagrad", """{"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.01}""" },
        { "RMSprop", """{"lr": 0.01, "momentum": 0.9, "centered": true}""" },
        { "Adadelta", """{"rho": 0.8, "weight_decay": 0.01, "maximize": true}""" },
        { "Adamax", """{"lr": 0.01, "betas": [0.8, 0.99], "weight_decay": 0.01}""" },
    };

    [Theory]
    [MemberData(nameof(Optimizers))]
    public async Task ExportedStateContinuesInTorch(string algorithm, string defaultsJson)
    {
        long[][] shapes = [[5, 4], [4], [3, 7]];
        var random = new Random(3);
        var defaults = ParseDefaults(defaultsJson);
        var spec = new OptimizerSpec
        {
            Algorithm = algorithm,
            DefaultOptions = defaults,
            Groups =
            [
                new ParamGroupSpec([], [new ParameterSpec("a", shapes[0]), new ParameterSpec("b", shapes[1])]),
                new ParamGroupSpec([new("lr", 0.05)], [new ParameterSpec("c", shapes[2])]),
            ],
            MaxShardElements = 6,
        };
        var optimizer = await ClusterOptimizer.CreateAsync(
            fixture.Client, $"interop-{algorithm}-{Guid.NewGuid():N}", spec, shapes.Select(s => RandomTensor(random, s)).ToList());

        // Three steps in the cluster, one of them without a gradient for parameter b.
        for (int step = 0; step < 3; step++)
        {
            await optimizer.StepAsync(0, shapes.Select((s, i) => step == 1 && i == 1 ? null : RandomTensor(random, s)).ToList());
        }

        string optimizerFile = Path.Combine(_folder, "optimizer.pt");
        string paramsFile = Path.Combine(_folder, "params.pt");
        StateDictFiles.WriteOptimizer(optimizerFile, await optimizer.StateDictAsync());
        var current = await optimizer.GetParametersAsync();
        StateDictFiles.WriteModel(paramsFile, shapes.Select((s, i) => ($"p{i}", s, current[i])).ToList());

        // Three more steps, run by the cluster and by torch from the exported files.
        var gradients = Enumerable.Range(0, 3).Select(step => shapes.Select((s, i) => step == 2 && i == 0 ? null : RandomTensor(random, s)).ToList()).ToList();
        string gradsFile = Path.Combine(_folder, "grads.pt");
        PtWriter.WriteFile(gradsFile, new OrderedDictionary<object, object?>
        {
            ["grads"] = gradients.Select(step => (object?)step.Select((g, i) => g is null ? null : (object?)Tensor.FromFloats(g, shapes[i])).ToList()).ToList(),
        });
        float[][] clusterParams = current;
        foreach (var step in gradients)
        {
            clusterParams = await optimizer.StepAsync(0, step);
        }

        string specFile = Path.Combine(_folder, "spec.json");
        File.WriteAllText(specFile, JsonSerializer.Serialize(new
        {
            optimizer = algorithm,
            defaults = JsonSerializer.Deserialize<Dictionary<string, object>>(defaultsJson),
            groups = new object[] { new { options = new { }, count = 2 }, new { options = new Dictionary<string, object> { ["lr"] = 0.05 }, count = 1 } },
        }));
        string outFile = Path.Combine(_folder, "torch_out.pt");
        PythonTorch.Run(
            File.ReadAllText(Path.Combine(RepositoryPaths.Root, "tests", "Orleans.Optim.Tests", "Interop", "continue_optimizer.py")),
            [specFile, paramsFile, optimizerFile, gradsFile, outFile]);

        var torchResult = PtReader.ReadFile(outFile);
        var torchParams = (List<object?>)torchResult["params"]!;
        for (int i = 0; i < shapes.Length; i++)
        {
            Assert.Null(StateDictComparison.ArrayDifference(((Tensor)torchParams[i]!).AsFloats(), clusterParams[i]));
        }

        var torchState = OptimizerStateDict.FromPython(torchResult["state_dict"]);
        var clusterState = await optimizer.StateDictAsync();
        Assert.Null(StateDictComparison.FirstDifference(torchState, clusterState, new HashSet<string> { StateDictAssembler.ParamNamesKey }));
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static List<KeyValuePair<string, object?>> ParseDefaults(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.EnumerateObject()
            .Select(p => new KeyValuePair<string, object?>(p.Name, ReferenceCase.ReadValue(p.Value, p.Name == "betas" ? "tuple" : null)))
            .ToList();
    }

    private static float[] RandomTensor(Random random, long[] shape) =>
        Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
}
