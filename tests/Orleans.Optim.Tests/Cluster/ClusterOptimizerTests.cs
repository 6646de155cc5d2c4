using Microsoft.Extensions.DependencyInjection;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Engine;
using Orleans.Optim.Layout;
using Orleans.Optim.Tests.Infrastructure;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Tests.Cluster;

[Collection(ClusterCollection.Name)]
public sealed class ClusterOptimizerTests(ClusterFixture fixture)
{
    private static int s_names;

    private static string NewName(string prefix) => $"{prefix}-{Interlocked.Increment(ref s_names)}";

    private static FloatPayload Floats(float[] values) => FloatPayload.Borrow(values, 0, values.Length);

    private static OptimizerSpec AdamSpec(int worldSize, int maxShardElements, params long[][] shapes) => new()
    {
        Algorithm = "Adam",
        DefaultOptions = [new("lr", 0.01)],
        Groups = [new ParamGroupSpec([], shapes.Select((s, i) => new ParameterSpec($"p{i}", s)).ToList())],
        WorldSize = worldSize,
        MaxShardElements = maxShardElements,
    };

    [Fact]
    public async Task SplitParameterSpansBothSilos()
    {
        // A 2048-element parameter in shards of 300 elements: 7 shards, which the placement spreads over both silos.
        var spec = AdamSpec(1, 300, [32, 64], [32]);
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, NewName("spread"), spec, [new float[2048], new float[32]]);

        var statuses = await optimizer.GetShardStatusesAsync();
        var siloOfShard = optimizer.Layout.Shards.Zip(statuses).Where(pair => pair.First.ParamId == 0).Select(pair => pair.Second.Silo).ToList();

        Assert.Equal(7, siloOfShard.Count);
        Assert.Equal(2, siloOfShard.Distinct().Count());
        Assert.Equal(2, fixture.Cluster.GetActiveSilos().Count());
    }

    [Fact]
    public async Task MeanOfWorkersMatchesLocalReplay()
    {
        const int worldSize = 4;
        var spec = AdamSpec(worldSize, 5, [3, 5], [7]);
        var random = new Random(7);
        float[][] initial = [RandomVector(random, 15), RandomVector(random, 7)];
        var creator = await ClusterOptimizer.CreateAsync(fixture.Client, NewName("mean"), spec, initial);
        var workers = new List<ClusterOptimizer> { creator };
        for (int rank = 1; rank < worldSize; rank++)
        {
            workers.Add(await ClusterOptimizer.AttachAsync(fixture.Client, creator.Name));
        }

        var local = new LocalOptimizer(spec, initial.Select(v => (float[])v.Clone()).ToList());
        for (int step = 0; step < 4; step++)
        {
            var perRank = Enumerable.Range(0, worldSize).Select(_ => new[] { RandomVector(random, 15), RandomVector(random, 7) }).ToList();
            var results = await Task.WhenAll(workers.Select((w, rank) => w.StepAsync(rank, perRank[rank])));

            // The reference reduces as the shards do: sum in rank order, then divide by the world size.
            var mean = new float[2][];
            for (int p = 0; p < 2; p++)
            {
                var reduced = new float[perRank[0][p].Length];
                GradientReducer.Reduce(perRank.Select(g => (float[]?)g[p]).ToList(), GradientReduction.Mean, reduced);
                mean[p] = reduced;
            }

            local.Step(mean);
            foreach (var result in results)
            {
                Assert.Null(StateDictComparison.ArrayDifference(local.Parameter(0), result[0]));
                Assert.Null(StateDictComparison.ArrayDifference(local.Parameter(1), result[1]));
            }
        }

        Assert.Null(StateDictComparison.FirstDifference(local.StateDict(), await creator.StateDictAsync()));
    }

    [Fact]
    public async Task StepFromSiloMatchesLocalReplay()
    {
        // Called through a silo's own grain factory, the shards on that silo get local calls, whose gradient and value
        // payloads Orleans passes by reference, and the shards on the other silo get remote calls. Rank 1 pushes no gradient for the second parameter.
        var grains = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<IGrainFactory>();
        const int worldSize = 2;
        var spec = AdamSpec(worldSize, 5000, [20_000], [3000]);
        var random = new Random(11);
        float[][] initial = [RandomVector(random, 20_000), RandomVector(random, 3000)];
        var creator = await ClusterOptimizer.CreateAsync(grains, NewName("silo-local"), spec, initial);
        var other = await ClusterOptimizer.AttachAsync(grains, creator.Name);
        var statuses = await creator.GetShardStatusesAsync();
        Assert.Equal(2, statuses.Select(s => s.Silo).Distinct().Count());

        var local = new LocalOptimizer(spec, initial.Select(v => (float[])v.Clone()).ToList());
        for (int step = 0; step < 5; step++)
        {
            float[][] rank0 = [RandomVector(random, 20_000), RandomVector(random, 3000)];
            float[]?[] rank1 = [RandomVector(random, 20_000), null];
            var results = await Task.WhenAll(creator.StepAsync(0, rank0), other.StepAsync(1, rank1));

            var mean = new float[2][];
            for (int p = 0; p < 2; p++)
            {
                mean[p] = new float[initial[p].Length];
                GradientReducer.Reduce([rank0[p], rank1[p]], GradientReduction.Mean, mean[p]);
            }

            local.Step(mean);
            foreach (var result in results)
            {
                Assert.Null(StateDictComparison.ArrayDifference(local.Parameter(0), result[0]));
                Assert.Null(StateDictComparison.ArrayDifference(local.Parameter(1), result[1]));
            }
        }
    }

    [Fact]
    public async Task LocalCallsKeepGradientsAndRepliesIndependent()
    {
        // The shard's own silo calls it, so Orleans passes the payloads by reference instead of serializing them.
        var spec = AdamSpec(2, 1000, [8]);
        var random = new Random(3);
        float[] initial = RandomVector(random, 8);
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, NewName("local-payload"), spec, [initial]);
        string silo = (await optimizer.GetShardStatusesAsync())[0].Silo;
        var grains = fixture.Cluster.Silos.First(s => s.SiloAddress.ToString() == silo).ServiceProvider.GetRequiredService<IGrainFactory>();
        var shard = grains.GetGrain<Grains.IShardGrain>(Grains.ShardKeys.For(optimizer.Name, 0));
        var local = new LocalOptimizer(spec, [(float[])initial.Clone()]);
        float[] g0 = RandomVector(random, 8);
        float[] g1 = RandomVector(random, 8);
        var mean = new float[8];
        GradientReducer.Reduce([g0, g1], GradientReduction.Mean, mean);
        local.Step([mean]);
        float[] afterFirst = (float[])local.Parameter(0).Clone();

        // Rank 0's gradient waits in the shard for rank 1's; once it is released, its array is overwritten.
        var push0 = Floats(g0);
        var first0 = shard.Step(1, 0, push0);
        await push0.Released.WaitAsync(TimeSpan.FromSeconds(30));
        Array.Fill(g0, 1000f);
        var first1 = await shard.Step(1, 1, Floats(g1));
        var first = new[] { await first0, first1 };

        // Step 2 updates the values in place before either reply of step 1 is read.
        float[] h0 = RandomVector(random, 8);
        float[] h1 = RandomVector(random, 8);
        var second = await Task.WhenAll(shard.Step(2, 0, Floats(h0)), shard.Step(2, 1, Floats(h1)));
        GradientReducer.Reduce([h0, h1], GradientReduction.Mean, mean);
        local.Step([mean]);

        Assert.All(first.Concat(second), reply => Assert.False(reply.Values.IsOwned, "The reply was serialized, so the call was not local."));
        Assert.All(first, reply => Assert.Null(StateDictComparison.ArrayDifference(afterFirst, Read(reply))));
        Assert.All(second, reply => Assert.Null(StateDictComparison.ArrayDifference(local.Parameter(0), Read(reply))));

        static float[] Read(Wire.StepReply reply)
        {
            var values = new float[reply.Values.Length];
            reply.Values.CopyTo(values);
            reply.Values.Dispose();
            return values;
        }
    }

    [Fact]
    public async Task CancelledStepLeavesCallerArrays()
    {
        // Rank 0 stops waiting while the shards wait for rank 1. Its gradients were sent by then, and its value
        // arrays get no write after the cancelled call returns, although the step completes later.
        var spec = AdamSpec(2, 3, [8]);
        var random = new Random(21);
        float[] initial = RandomVector(random, 8);
        var first = await ClusterOptimizer.CreateAsync(fixture.Client, NewName("cancelled"), spec, [initial]);
        var second = await ClusterOptimizer.AttachAsync(fixture.Client, first.Name);
        float[] g0 = RandomVector(random, 8);
        float[] g1 = RandomVector(random, 8);
        var mean = new float[8];
        GradientReducer.Reduce([g0, g1], GradientReduction.Mean, mean);
        var local = new LocalOptimizer(spec, [(float[])initial.Clone()]);
        local.Step([mean]);
        float[][] cancelledValues = [Enumerable.Repeat(-7f, 8).ToArray()];

        using var cancellation = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first.StepAsync(0, [g0], cancelledValues, cancellation.Token));
        Array.Fill(g0, 1000f);
        float[][] values = [new float[8]];
        await second.StepAsync(1, [g1], values);
        await Task.Delay(500);

        Assert.Null(StateDictComparison.ArrayDifference(local.Parameter(0), values[0]));
        Assert.All(cancelledValues[0], value => Assert.Equal(-7f, value));
        Assert.Equal(0, first.StepCount);
    }

    [Fact]
    public async Task DuplicateRankRejectedStateKept()
    {
        var spec = AdamSpec(2, 1000, [4]);
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, NewName("duplicate"), spec, [new float[4]]);
        var other = await ClusterOptimizer.AttachAsync(fixture.Client, optimizer.Name);
        var before = await optimizer.StateDictAsync();

        var first = optimizer.StepAsync(0, [[1f, 2f, 3f, 4f]]);
        await WaitForPendingRankAsync(optimizer, rank: 0);
        var duplicate = await Assert.ThrowsAsync<OptimizerFaultException>(() => other.StepAsync(0, [[1f, 2f, 3f, 4f]]));
        Assert.Equal(OptimizerFault.StepRejected, duplicate.Fault);
        Assert.Contains("Rank 0 already pushed its gradient for step 1", duplicate.Message);

        await other.StepAsync(1, [[1f, 1f, 1f, 1f]]);
        await first;
        Assert.NotNull(StateDictComparison.FirstDifference(before, await optimizer.StateDictAsync()));
        Assert.Equal(1, optimizer.StepCount);
    }

    [Fact]
    public async Task BadRankAndLengthRejected()
    {
        var spec = AdamSpec(1, 1000, [4]);
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, NewName("bad-push"), spec, [new float[4]]);
        var shard = fixture.Client.GetGrain<Grains.IShardGrain>(Grains.ShardKeys.For(optimizer.Name, 0));

        var badRank = await Assert.ThrowsAsync<OptimizerFaultException>(() => shard.Step(1, 1, Floats(new float[4])));
        Assert.Contains("Invalid rank 1: expected 0 <= rank < world_size = 1", badRank.Message);

        var badLength = await Assert.ThrowsAsync<OptimizerFaultException>(() => shard.Step(1, 0, Floats(new float[3])));
        Assert.Contains("has 3 float32 values (12 bytes); expected 4 (16 bytes)", badLength.Message);

        var ahead = await Assert.ThrowsAsync<OptimizerFaultException>(() => shard.Step(3, 0, Floats(new float[4])));
        Assert.Contains("Step 3 from rank 0 is too far ahead: the optimizer is at step 0", ahead.Message);

        await optimizer.StepAsync(0, [[1f, 1f, 1f, 1f]]);
        var stale = await Assert.ThrowsAsync<OptimizerFaultException>(() => shard.Step(1, 0, Floats(new float[4])));
        Assert.Contains("Step 1 from rank 0 is already applied", stale.Message);
        Assert.Equal(1, (await shard.GetStatus()).Step);
    }

    [Fact]
    public async Task UnknownParameterGradientRejected()
    {
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, NewName("unknown-param"), AdamSpec(1, 1000, [4]), [new float[4]]);

        var error = await Assert.ThrowsAsync<ArgumentException>(() => optimizer.StepAsync(0, [new float[4], new float[2]]));

        Assert.StartsWith("Expected 1 tensors (one per parameter, in param-ID order), found 2.", error.Message);
        Assert.Equal(0, optimizer.StepCount);
        Assert.Empty((await optimizer.StateDictAsync()).State);
    }

    [Fact]
    public async Task StragglerTimesOutNamingRank()
    {
        var spec = AdamSpec(3, 1000, [4]);
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, NewName("straggler"), spec, [new float[4]]);
        var before = await optimizer.StateDictAsync();

        var error = await Assert.ThrowsAsync<OptimizerFaultException>(() => optimizer.StepAsync(1, [[1f, 2f, 3f, 4f]]));

        Assert.Equal(OptimizerFault.StepTimedOut, error.Fault);
        Assert.Contains("is missing the gradient of rank(s) 0, 2", error.Message);
        Assert.Equal(0, optimizer.StepCount);
        Assert.Null(StateDictComparison.FirstDifference(before, await optimizer.StateDictAsync()));
    }

    [Fact]
    public async Task CreateConflictRejected()
    {
        string name = NewName("conflict");
        await ClusterOptimizer.CreateAsync(fixture.Client, name, AdamSpec(1, 1000, [4]), [new float[4]]);

        var again = await ClusterOptimizer.CreateAsync(fixture.Client, name, AdamSpec(1, 1000, [4]), [new float[4]]);
        var conflict = await Assert.ThrowsAsync<OptimizerFaultException>(() => ClusterOptimizer.CreateAsync(fixture.Client, name, AdamSpec(2, 1000, [4]), [new float[4]]));

        Assert.Equal(name, again.Name);
        Assert.Equal(OptimizerFault.Conflict, conflict.Fault);
        Assert.Contains($"Optimizer '{name}' already exists with a different spec", conflict.Message);
    }

    [Fact]
    public async Task InvalidLearningRateRejectedUnchanged()
    {
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, NewName("bad-lr"), AdamSpec(1, 1000, [4]), [new float[4]]);

        var error = await Assert.ThrowsAsync<Orleans.Optim.Algorithms.InvalidHyperparameterException>(() => optimizer.SetHyperparameterAsync(0, "lr", -0.5));
        var groups = await optimizer.GetParamGroupsAsync();

        Assert.StartsWith("Invalid learning rate: -0.5 in param_groups[0]['lr']; expected a value >= 0.0.", error.Message);
        Assert.Equal(0.01, groups[0]["lr"]);
    }

    [Fact]
    public async Task PartialPushAbandonsStepEverywhere()
    {
        // Three shards of 4 elements. Rank 0 dies while it pushes: its gradient reaches shard 0 only, which then has
        // every rank's gradient while shards 1 and 2 wait for rank 0.
        var spec = AdamSpec(2, 4, [12]);
        var random = new Random(11);
        float[] initial = RandomVector(random, 12);
        var survivor = await ClusterOptimizer.CreateAsync(fixture.Client, NewName("partial"), spec, [initial]);
        var dying = await ClusterOptimizer.AttachAsync(fixture.Client, survivor.Name);
        var before = await survivor.StateDictAsync();
        float[] gradient0 = RandomVector(random, 12);
        float[] gradient1 = RandomVector(random, 12);

        var partialPush = fixture.Client.GetGrain<Grains.IShardGrain>(Grains.ShardKeys.For(survivor.Name, 0))
            .Step(1, 0, Floats(gradient0[..4]));
        var error = await Assert.ThrowsAsync<OptimizerFaultException>(() => survivor.StepAsync(1, [gradient1]));
        var partialError = await Assert.ThrowsAsync<OptimizerFaultException>(() => partialPush);
        var statuses = await survivor.GetShardStatusesAsync();

        Assert.Equal(OptimizerFault.StepTimedOut, error.Fault);
        Assert.Contains("is missing the gradient of rank(s) 0", error.Message);
        Assert.Contains("The optimizer stays at step 0", error.Message);
        Assert.Equal(OptimizerFault.StepTimedOut, partialError.Fault);
        Assert.All(statuses, status => Assert.Equal(0, status.Step));
        Assert.All(statuses, status => Assert.Empty(status.PendingRanks));
        Assert.Equal(0, survivor.StepCount);
        Assert.Null(StateDictComparison.FirstDifference(before, await survivor.StateDictAsync()));

        // Both ranks push step 1 again, and the result is the step as if nothing had failed.
        var results = await Task.WhenAll(dying.StepAsync(0, [gradient0]), survivor.StepAsync(1, [gradient1]));
        var local = new LocalOptimizer(spec, [(float[])initial.Clone()]);
        var mean = new float[12];
        GradientReducer.Reduce([gradient0, gradient1], GradientReduction.Mean, mean);
        local.Step([mean]);

        Assert.Null(StateDictComparison.ArrayDifference(local.Parameter(0), results[0][0]));
        Assert.Equal(results[0][0], results[1][0]);
        Assert.Null(StateDictComparison.FirstDifference(local.StateDict(), await survivor.StateDictAsync()));
    }

    private static async Task WaitForPendingRankAsync(ClusterOptimizer optimizer, int rank)
    {
        for (int attempt = 0; attempt < 200; attempt++)
        {
            var statuses = await optimizer.GetShardStatusesAsync();
            if (statuses.All(s => s.PendingRanks.Contains(rank)))
            {
                return;
            }

            await Task.Delay(10);
        }

        throw new TimeoutException($"Rank {rank}'s push did not reach every shard within 2 s.");
    }

    private static float[] RandomVector(Random random, int length) =>
        Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
}
