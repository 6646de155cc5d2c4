using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Cluster;

/// <summary>
/// An observer that takes state dicts while the workers keep stepping always gets a consistent cut: every shard at
/// the same step, equal to a replay stopped at that step.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ConsistentCutTests(ClusterFixture fixture)
{
    private const int Steps = 150;

    [Fact]
    public async Task StateDictDuringStepsIsConsistent()
    {
        var spec = new OptimizerSpec
        {
            Algorithm = "SGD",
            DefaultOptions = [new("lr", 0.05), new("momentum", 0.9)],
            Groups = [new ParamGroupSpec([], [new ParameterSpec("w", [30])])],
            WorldSize = 2,
            MaxShardElements = 7,
        };
        float[] initial = new float[30];
        var first = await ClusterOptimizer.CreateAsync(fixture.Client, "cut-" + Guid.NewGuid().ToString("N"), spec, [initial]);
        var second = await ClusterOptimizer.AttachAsync(fixture.Client, first.Name);
        var observer = await ClusterOptimizer.AttachAsync(fixture.Client, first.Name);

        // The reference keeps every step's state dict, to compare each cut with the replay at its step.
        var reference = new LocalOptimizer(spec, [(float[])initial.Clone()]);
        var expected = new List<OptimizerStateDict> { reference.StateDict() };
        for (int step = 1; step <= Steps; step++)
        {
            reference.Step([Mean(step)]);
            expected.Add(reference.StateDict());
        }

        using var stop = new CancellationTokenSource();
        var training = Task.WhenAll(
            Task.Run(async () =>
            {
                for (int step = 1; step <= Steps; step++)
                {
                    await first.StepAsync(0, [Gradient(step, 0)]);
                }
            }),
            Task.Run(async () =>
            {
                for (int step = 1; step <= Steps; step++)
                {
                    await second.StepAsync(1, [Gradient(step, 1)]);
                }
            }));

        var cuts = new List<OptimizerStateDict>();
        while (!training.IsCompleted && cuts.Count < 200)
        {
            cuts.Add(await observer.StateDictAsync());
        }

        await training;
        Assert.NotEmpty(cuts);
        var ignored = new HashSet<string> { StateDictAssembler.ParamNamesKey };
        int lastStep = 0;
        foreach (var cut in cuts)
        {
            // A torn cut (shards at different steps) would match no step of the replay.
            int step = expected.FindIndex(e => StateDictComparison.FirstDifference(e, cut, ignored) is null);
            Assert.True(step >= 0, "a state dict taken during training matches no step of the replay");
            Assert.True(step >= lastStep, $"a later state dict went back from step {lastStep} to step {step}");
            lastStep = step;
        }
    }

    private static float[] Mean(int step)
    {
        var mean = new float[30];
        GradientReducer.Reduce([Gradient(step, 0), Gradient(step, 1)], GradientReduction.Mean, mean);
        return mean;
    }

    private static float[] Gradient(int step, int rank) => Enumerable.Range(0, 30).Select(i => (float)Math.Cos(step * 0.37 + i * 0.11 + rank)).ToArray();
}
