using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Layout;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Cluster;

/// <summary>Non-finite gradients: they propagate as in torch by default, or skip the whole step on every shard when asked.</summary>
[Collection(ClusterCollection.Name)]
public sealed class NonFiniteGradientTests(ClusterFixture fixture)
{
    private static OptimizerSpec Spec(bool skip) => new()
    {
        Algorithm = "Adam",
        DefaultOptions = [new("lr", 0.01)],
        Groups = [new ParamGroupSpec([], [new ParameterSpec("a", [6]), new ParameterSpec("b", [9])])],
        WorldSize = 2,
        MaxShardElements = 4,
        SkipNonFiniteSteps = skip,
    };

    [Fact]
    public async Task NonFiniteStepSkippedEverywhere()
    {
        var (first, second) = await CreateAsync(skip: true);
        await StepBothAsync(first, second, Fill(6, 0.1f), Fill(9, 0.2f), Fill(9, 0.3f));
        var before = await first.StateDictAsync();
        var parametersBefore = await first.GetParametersAsync();

        float[] poisoned = Fill(9, 0.3f);
        poisoned[7] = float.PositiveInfinity;
        var results = await StepBothAsync(first, second, Fill(6, 0.1f), Fill(9, 0.2f), poisoned);

        Assert.True(first.LastStepSkipped);
        Assert.True(second.LastStepSkipped);
        Assert.Equal(2, first.StepCount);
        Assert.Null(StateDictComparison.FirstDifference(before, await first.StateDictAsync()));
        Assert.Null(StateDictComparison.ArrayDifference(parametersBefore[0], results[0][0]));
        Assert.Null(StateDictComparison.ArrayDifference(parametersBefore[1], results[0][1]));

        await StepBothAsync(first, second, Fill(6, 0.1f), Fill(9, 0.2f), Fill(9, 0.3f));
        Assert.False(first.LastStepSkipped);
        Assert.Equal(3, first.StepCount);
        Assert.Equal(2.0, ReadStep(await first.StateDictAsync()));
    }

    [Fact]
    public async Task NonFiniteGradientPropagatesByDefault()
    {
        var (first, second) = await CreateAsync(skip: false);
        float[] poisoned = Fill(9, 0.3f);
        poisoned[0] = float.NaN;

        var results = await StepBothAsync(first, second, Fill(6, 0.1f), Fill(9, 0.2f), poisoned);

        Assert.False(first.LastStepSkipped);
        Assert.True(float.IsNaN(results[0][1][0]));
        Assert.False(float.IsNaN(results[0][1][1]));
        Assert.All(results[0][0], v => Assert.True(float.IsFinite(v)));
    }

    private async Task<(ClusterOptimizer First, ClusterOptimizer Second)> CreateAsync(bool skip)
    {
        var first = await ClusterOptimizer.CreateAsync(fixture.Client, "non-finite-" + Guid.NewGuid().ToString("N"), Spec(skip), [Fill(6, 1f), Fill(9, -1f)]);
        var second = await ClusterOptimizer.AttachAsync(fixture.Client, first.Name);
        return (first, second);
    }

    private static Task<float[][][]> StepBothAsync(ClusterOptimizer first, ClusterOptimizer second, float[] a, float[] b0, float[] b1) =>
        Task.WhenAll(first.StepAsync(0, [a, b0]), second.StepAsync(1, [a, b1]));

    private static double ReadStep(Orleans.Optim.StateDicts.OptimizerStateDict stateDict) =>
        ((Tensors.Tensor)stateDict.State[0]["step"]!).AsFloats()[0];

    private static float[] Fill(int length, float value) => Enumerable.Repeat(value, length).ToArray();
}
