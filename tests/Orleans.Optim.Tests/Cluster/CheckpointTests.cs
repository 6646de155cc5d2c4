using Orleans.Optim.Checkpoints;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Layout;
using Orleans.Optim.Schedulers;
using Orleans.Optim.Tests.Infrastructure;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Tests.Cluster;

/// <summary>Sharded checkpoints: written in parallel with the manifest last, listed, kept, restored in place or resharded.</summary>
[Collection(ClusterCollection.Name)]
public sealed class CheckpointTests(ClusterFixture fixture)
{
    private static OptimizerSpec Spec(int maxShardElements) => new()
    {
        Algorithm = "Adam",
        DefaultOptions = [new("lr", 0.01), new("amsgrad", true)],
        Groups =
        [
            new ParamGroupSpec([], [new ParameterSpec("w", [5, 7]), new ParameterSpec("b", [7])]),
            new ParamGroupSpec([new("lr", 0.02)], [new ParameterSpec("head", [3])]),
        ],
        MaxShardElements = maxShardElements,
    };

    [Fact]
    public async Task RestoreReturnsToCheckpointState()
    {
        var optimizer = await TrainedAsync(steps: 3);
        var atCheckpoint = await optimizer.StateDictAsync();
        var parameters = await optimizer.GetParametersAsync();

        var info = await optimizer.CheckpointAsync();
        await StepAsync(optimizer, from: 4, count: 2);
        long step = await optimizer.RestoreCheckpointAsync(info.Id);

        Assert.Equal(3, info.Step);
        Assert.Equal(3, step);
        Assert.Null(StateDictComparison.FirstDifference(atCheckpoint, await optimizer.StateDictAsync()));
        var restored = await optimizer.GetParametersAsync();
        for (int i = 0; i < parameters.Length; i++)
        {
            Assert.Null(StateDictComparison.ArrayDifference(parameters[i], restored[i]));
        }
    }

    [Theory]
    [InlineData(4, 1000)]
    [InlineData(1000, 3)]
    public async Task ReshardedRestoreIsBitIdentical(int writtenShardSize, int restoredShardSize)
    {
        var source = await TrainedAsync(steps: 4, maxShardElements: writtenShardSize);
        await source.SetSchedulerAsync(SchedulerSpec.Parse("StepLR(step_size=1, gamma=0.5)"));
        await source.SchedulerStepAsync();
        var info = await source.CheckpointAsync();

        var restored = await ClusterOptimizer.CreateFromCheckpointAsync(fixture.Client, NewName(), source.Name, info.Id, restoredShardSize);

        Assert.Equal(restoredShardSize, restored.Layout.MaxShardElements);
        Assert.Equal(4, restored.StepCount);
        Assert.Null(StateDictComparison.FirstDifference(await source.StateDictAsync(), await restored.StateDictAsync()));
        Assert.Equal(await source.SchedulerStateDictAsync(), await restored.SchedulerStateDictAsync(), PythonStateComparer.Instance);
        var expected = await source.GetParametersAsync();
        var actual = await restored.GetParametersAsync();
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Null(StateDictComparison.ArrayDifference(expected[i], actual[i]));
        }

        // Both continue identically.
        float[]?[] gradients = [Fill(35, 0.3f), Fill(7, -0.1f), Fill(3, 0.2f)];
        var next = await source.StepAsync(0, gradients);
        var nextRestored = await restored.StepAsync(0, gradients);
        Assert.Null(StateDictComparison.ArrayDifference(next[0], nextRestored[0]));
    }

    [Fact]
    public async Task RetentionKeepsNewestThree()
    {
        var optimizer = await TrainedAsync(steps: 1);
        for (int i = 0; i < 4; i++)
        {
            await optimizer.CheckpointAsync();
            await StepAsync(optimizer, from: 2 + i, count: 1);
        }

        await optimizer.CheckpointAsync();
        var list = await optimizer.ListCheckpointsAsync();

        Assert.Equal([3L, 4L, 5L], list.Select(c => c.Step));
        Assert.All(list, c => Assert.Equal(5, c.Shards));
    }

    [Fact]
    public async Task CheckpointWithoutManifestDoesNotExist()
    {
        var optimizer = await TrainedAsync(steps: 2);
        var info = await optimizer.CheckpointAsync();
        File.Delete(Path.Combine(fixture.CheckpointFolder, optimizer.Name, info.Id, CheckpointManifest.FileName));

        var error = await Assert.ThrowsAsync<OptimizerFaultException>(() => optimizer.RestoreCheckpointAsync(info.Id));

        Assert.Empty(await optimizer.ListCheckpointsAsync());
        Assert.Equal(OptimizerFault.NotFound, error.Fault);
        Assert.Contains($"Checkpoint '{info.Id}' of optimizer '{optimizer.Name}' not found", error.Message);
    }

    [Fact]
    public async Task DamagedShardFileChangesNothing()
    {
        var optimizer = await TrainedAsync(steps: 2);
        var info = await optimizer.CheckpointAsync();
        await StepAsync(optimizer, from: 3, count: 1);
        var before = await optimizer.StateDictAsync();
        string file = Path.Combine(fixture.CheckpointFolder, optimizer.Name, info.Id, "shard-000002.bin");
        byte[] bytes = File.ReadAllBytes(file);
        bytes[^1] ^= 0x40;
        File.WriteAllBytes(file, bytes);

        var error = await Assert.ThrowsAsync<OptimizerFaultException>(() => optimizer.RestoreCheckpointAsync(info.Id));

        Assert.Contains("shard-000002.bin", error.Message);
        Assert.Contains("is damaged", error.Message);
        Assert.Null(StateDictComparison.FirstDifference(before, await optimizer.StateDictAsync()));
        Assert.Equal(3, optimizer.StepCount);
    }

    [Fact]
    public async Task RecoverOnHealthyOptimizerChangesNothing()
    {
        var optimizer = await TrainedAsync(steps: 2);
        var before = await optimizer.StateDictAsync();

        long step = await optimizer.RecoverAsync();

        Assert.Equal(2, step);
        Assert.Null(StateDictComparison.FirstDifference(before, await optimizer.StateDictAsync()));
    }

    private async Task<ClusterOptimizer> TrainedAsync(int steps, int maxShardElements = 12)
    {
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, NewName(), Spec(maxShardElements), [Fill(35, 0.5f), Fill(7, -0.5f), Fill(3, 1f)]);
        await StepAsync(optimizer, from: 1, count: steps);
        return optimizer;
    }

    private static async Task StepAsync(ClusterOptimizer optimizer, int from, int count)
    {
        for (int step = from; step < from + count; step++)
        {
            var random = new Random(step);
            float[]?[] gradients =
            [
                Enumerable.Range(0, 35).Select(_ => (float)random.NextDouble() - 0.5f).ToArray(),
                step == 2 ? null : Enumerable.Range(0, 7).Select(_ => (float)random.NextDouble() - 0.5f).ToArray(),
                Enumerable.Range(0, 3).Select(_ => (float)random.NextDouble() - 0.5f).ToArray(),
            ];
            await optimizer.StepAsync(0, gradients);
        }
    }

    private static float[] Fill(int length, float value) => Enumerable.Repeat(value, length).ToArray();

    private static string NewName() => "checkpoint-" + Guid.NewGuid().ToString("N");

    /// <summary>Compares Python value trees strictly.</summary>
    private sealed class PythonStateComparer : IEqualityComparer<OrderedDictionary<object, object?>>
    {
        public static readonly PythonStateComparer Instance = new();

        public bool Equals(OrderedDictionary<object, object?>? x, OrderedDictionary<object, object?>? y) => Orleans.Optim.Python.PythonValues.StrictEquals(x, y);

        public int GetHashCode(OrderedDictionary<object, object?> obj) => obj.Count;
    }
}
