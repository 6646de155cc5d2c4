using Orleans.Optim.Checkpoints;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Layout;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Cluster;

/// <summary>Consolidated .pt files built from a sharded checkpoint without the cluster, read by this project and by torch.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ExportTests(ClusterFixture fixture) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-export-").FullName;

    [Fact]
    public async Task ExportEqualsLiveStateDict()
    {
        var spec = new OptimizerSpec
        {
            Algorithm = "AdamW",
            DefaultOptions = [new("lr", 0.01), new("amsgrad", true)],
            Groups = [new ParamGroupSpec([], [new ParameterSpec("0.weight", [4, 9]), new ParameterSpec("0.bias", [4])]), new ParamGroupSpec([new("lr", 0.1)], [new ParameterSpec("2.weight", [3, 4])])],
            MaxShardElements = 10,
        };
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, "export-" + Guid.NewGuid().ToString("N"), spec, [Fill(36, 0.1f), Fill(4, 0.2f), Fill(12, 0.3f)]);
        for (int step = 1; step <= 3; step++)
        {
            await optimizer.StepAsync(0, [Fill(36, 0.01f * step), step == 1 ? null : Fill(4, -0.02f), Fill(12, 0.03f)]);
        }

        var info = await optimizer.CheckpointAsync();
        var exporter = await CheckpointExporter.OpenAsync(new LocalFolderCheckpointStore(fixture.CheckpointFolder), optimizer.Name, info.Id);
        string optimizerFile = Path.Combine(_folder, "optimizer.pt");
        string modelFile = Path.Combine(_folder, "model.pt");
        exporter.WriteOptimizer(optimizerFile);
        exporter.WriteModel(modelFile);

        Assert.Null(StateDictComparison.FirstDifference(await optimizer.StateDictAsync(), StateDictFiles.ReadOptimizer(optimizerFile)));
        var model = StateDictFiles.ReadModel(modelFile);
        var parameters = await optimizer.GetParametersAsync();
        Assert.Equal(["0.weight", "0.bias", "2.weight"], model.Keys);
        Assert.Null(StateDictComparison.ArrayDifference(parameters[0], model["0.weight"].AsFloats()));
        Assert.Null(StateDictComparison.ArrayDifference(parameters[2], model["2.weight"].AsFloats()));

        string loaded = PythonTorch.Run(
            """
            import sys, torch
            state = torch.load(sys.argv[1]); model = torch.load(sys.argv[2])
            params = [torch.nn.Parameter(t) for t in model.values()]
            opt = torch.optim.AdamW([{'params': params[:2]}, {'params': params[2:]}])
            opt.load_state_dict(state)
            print(len(opt.state), float(opt.state[params[0]]['step']), opt.param_groups[1]['lr'])
            """,
            [optimizerFile, modelFile]);
        Assert.Equal("3 3.0 0.1", loaded.Trim());
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static float[] Fill(int length, float value) => Enumerable.Repeat(value, length).ToArray();
}
