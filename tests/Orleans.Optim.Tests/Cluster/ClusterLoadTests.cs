using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Layout;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;
using Orleans.Optim.Tests.Infrastructure;
using Orleans.Optim.Tests.Pt;

namespace Orleans.Optim.Tests.Cluster;

/// <summary>Loading .pt files into a cluster optimizer: good files load, bad ones are rejected and change nothing.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterLoadTests(ClusterFixture fixture) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-load-").FullName;

    [Fact]
    public async Task SavedFileLoadsIntoFreshOptimizer()
    {
        var source = await CreateTrainedAsync();
        string path = Path.Combine(_folder, "saved.pt");
        await source.SaveAsync(path);
        var target = await ClusterOptimizer.CreateAsync(fixture.Client, NewName(), Spec(), [new float[12], new float[5]]);

        await target.LoadAsync(path);

        Assert.Null(StateDictComparison.FirstDifference(await source.StateDictAsync(), await target.StateDictAsync()));
    }

    [Fact]
    public async Task ForbiddenGlobalFileChangesNothing()
    {
        var optimizer = await CreateTrainedAsync();
        var before = await optimizer.StateDictAsync();
        string path = Path.Combine(_folder, "evil.pt");
        var pickle = PickleBuilder.Start().Op(PickleOpcodes.EmptyDict).Str("state")
            .Global("builtins", "eval").Str("__import__('os').system('echo pwned')").Op(PickleOpcodes.Tuple1).Op(PickleOpcodes.Reduce)
            .Op(PickleOpcodes.SetItem).Stop();
        File.WriteAllBytes(path, PtArchiveBuilder.PtFile(pickle));

        var error = await Assert.ThrowsAsync<PtFormatException>(() => optimizer.LoadAsync(path));

        Assert.Contains("Rejected global 'builtins.eval'", error.Message);
        Assert.Null(StateDictComparison.FirstDifference(before, await optimizer.StateDictAsync()));
    }

    [Fact]
    public async Task TruncatedFileChangesNothing()
    {
        var optimizer = await CreateTrainedAsync();
        var before = await optimizer.StateDictAsync();
        string path = Path.Combine(_folder, "truncated.pt");
        await optimizer.SaveAsync(path);
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]);

        var error = await Assert.ThrowsAsync<PtFormatException>(() => optimizer.LoadAsync(path));

        Assert.Contains("truncated.pt", error.Message);
        Assert.Null(StateDictComparison.FirstDifference(before, await optimizer.StateDictAsync()));
    }

    [Fact]
    public async Task WrongShapeFileChangesNothing()
    {
        var optimizer = await CreateTrainedAsync();
        var before = await optimizer.StateDictAsync();
        var corrupted = await optimizer.StateDictAsync();
        corrupted.State[0]["exp_avg_sq"] = Tensor.Zeros(12);
        string path = Path.Combine(_folder, "wrong-shape.pt");
        StateDictFiles.WriteOptimizer(path, corrupted);

        var error = await Assert.ThrowsAsync<StateDictException>(() => optimizer.LoadAsync(path));

        Assert.Contains("state[0] ('w') entry 'exp_avg_sq': expected a floating-point tensor of shape [3, 4] like its parameter, found Tensor[float32,[12]]", error.Message);
        Assert.Null(StateDictComparison.FirstDifference(before, await optimizer.StateDictAsync()));
    }

    [Fact]
    public async Task ModelFileRejectedAsOptimizer()
    {
        var optimizer = await CreateTrainedAsync();
        string path = Path.Combine(_folder, "model.pt");
        await optimizer.SaveParametersAsync(path);

        var error = await Assert.ThrowsAsync<StateDictException>(() => optimizer.LoadAsync(path));

        Assert.Contains("model.pt: Expected key 'state' holding a dict, found no such key; the root has keys ['w', 'b']", error.Message);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static string NewName() => "load-" + Guid.NewGuid().ToString("N");

    private static OptimizerSpec Spec() => new()
    {
        Algorithm = "Adam",
        DefaultOptions = [new("lr", 0.01), new("amsgrad", true)],
        Groups = [new ParamGroupSpec([], [new ParameterSpec("w", [3, 4]), new ParameterSpec("b", [5])])],
        MaxShardElements = 5,
    };

    private async Task<ClusterOptimizer> CreateTrainedAsync()
    {
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, NewName(), Spec(), [new float[12], new float[5]]);
        for (int step = 1; step <= 3; step++)
        {
            await optimizer.StepAsync(0, [Enumerable.Repeat(0.1f * step, 12).ToArray(), Enumerable.Repeat(-0.2f, 5).ToArray()]);
        }

        return optimizer;
    }
}
