using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Cluster;

/// <summary>
/// A bounded load: 8 workers on the two-silo cluster run 1,000 synchronous steps with random delays, and no update
/// is lost or applied twice: the result equals a single-process replay of the same gradients bit for bit.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class LoadTests(ClusterFixture fixture)
{
    private const int Workers = 8;
    private const int Steps = 1000;

    [Fact]
    public async Task ThousandStepsMatchReplay()
    {
        var spec = new OptimizerSpec
        {
            Algorithm = "Adam",
            DefaultOptions = [new("lr", 0.001), new("amsgrad", true)],
            Groups = [new ParamGroupSpec([], [new ParameterSpec("w", [16, 8]), new ParameterSpec("b", [16])])],
            WorldSize = Workers,
            MaxShardElements = 40,
        };
        float[][] initial = [Values(128, 1), Values(16, 2)];
        var workers = new ClusterOptimizer[Workers];
        workers[0] = await ClusterOptimizer.CreateAsync(fixture.Client, "load-" + Guid.NewGuid().ToString("N"), spec, initial);
        for (int rank = 1; rank < Workers; rank++)
        {
            workers[rank] = await ClusterOptimizer.AttachAsync(fixture.Client, workers[0].Name);
        }

        // Every worker runs its own loop with random delays, so the ranks arrive at the shards in every order.
        var finals = await Task.WhenAll(Enumerable.Range(0, Workers).Select(rank => Task.Run(async () =>
        {
            var random = new Random(100 + rank);
            float[][] parameters = initial;
            for (int step = 1; step <= Steps; step++)
            {
                if (random.Next(4) == 0)
                {
                    await Task.Delay(random.Next(3));
                }

                parameters = await workers[rank].StepAsync(rank, Gradients(step, rank));
            }

            return parameters;
        })));

        var reference = new LocalOptimizer(spec, initial.Select(v => (float[])v.Clone()).ToList());
        for (int step = 1; step <= Steps; step++)
        {
            var mean = new float[2][];
            for (int p = 0; p < 2; p++)
            {
                mean[p] = new float[initial[p].Length];
                GradientReducer.Reduce(Enumerable.Range(0, Workers).Select(rank => Gradients(step, rank)[p]).ToList(), GradientReduction.Mean, mean[p]);
            }

            reference.Step(mean);
        }

        foreach (var final in finals)
        {
            Assert.Null(StateDictComparison.ArrayDifference(reference.Parameter(0), final[0]));
            Assert.Null(StateDictComparison.ArrayDifference(reference.Parameter(1), final[1]));
        }

        Assert.All(workers, w => Assert.Equal(Steps, w.StepCount));
        Assert.Null(StateDictComparison.FirstDifference(reference.StateDict(), await workers[0].StateDictAsync(), new HashSet<string> { StateDictAssembler.ParamNamesKey }));
    }

    private static float[]?[] Gradients(int step, int rank) => [Values(128, step * 100 + rank), step % 7 == rank ? null : Values(16, step * 100 + rank + 50)];

    private static float[] Values(int length, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
    }
}
