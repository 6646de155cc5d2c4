using Orleans.Optim.Checkpoints;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Grains;
using Orleans.Optim.Layout;
using Orleans.Optim.Tests.Infrastructure;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Tests.Cluster;

/// <summary>
/// <c>SaveAsync</c>, which streams the state from the shards into the <c>.pt</c> file in chunks, against the gathered
/// state dict, a sharded checkpoint's export and torch.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class StreamedSaveTests(ClusterFixture fixture) : IDisposable
{
    // 1,500,000 elements in shards of 1,200,000: a shard keeps 3 x 4.8 MB of AMSGrad state, more than one 4 MiB
    // chunk, so the state dict's chunks end inside tensors.
    private const int LargeElements = 1_500_000;

    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-streamed-save-").FullName;

    [Fact]
    public async Task SaveEqualsGatheredStateDictBytes()
    {
        var optimizer = await CreateSteppedAsync();
        string streamed = Path.Combine(_folder, "streamed.pt");
        string gathered = Path.Combine(_folder, "gathered.pt");

        await optimizer.SaveAsync(streamed);
        StateDictFiles.WriteOptimizer(gathered, await optimizer.StateDictAsync());

        Assert.Equal(new FileInfo(gathered).Length, new FileInfo(streamed).Length);
        Assert.True(File.ReadAllBytes(gathered).AsSpan().SequenceEqual(File.ReadAllBytes(streamed)), "The streamed file differs from the gathered state dict's file.");
    }

    [Fact]
    public async Task SaveEqualsCheckpointExport()
    {
        // The checkpoint exporter reads each shard's own file, a path that shares no read code with SaveAsync.
        var optimizer = await CreateSteppedAsync();
        string streamed = Path.Combine(_folder, "streamed.pt");
        string exported = Path.Combine(_folder, "exported.pt");

        await optimizer.SaveAsync(streamed);
        var info = await optimizer.CheckpointAsync();
        var exporter = await CheckpointExporter.OpenAsync(new LocalFolderCheckpointStore(fixture.CheckpointFolder), optimizer.Name, info.Id);
        exporter.WriteOptimizer(exported);

        Assert.Null(StateDictComparison.FirstDifference(StateDictFiles.ReadOptimizer(exported), StateDictFiles.ReadOptimizer(streamed)));
    }

    [Fact]
    public async Task SaveLoadsInTorchAdamW()
    {
        var optimizer = await CreateSteppedAsync();
        string streamed = Path.Combine(_folder, "streamed.pt");
        string resaved = Path.Combine(_folder, "resaved.pt");
        await optimizer.SaveAsync(streamed);

        // torch loads the file into an AdamW over parameters of the same shapes and saves its state dict again.
        string output = PythonTorch.Run(
            """
            import sys, torch
            state = torch.load(sys.argv[1])
            shapes = [(4, 9), (4,), (1500000,), (3, 4)]
            params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
            opt = torch.optim.AdamW([{'params': params[:3]}, {'params': params[3:]}], amsgrad=True)
            opt.load_state_dict(state)
            torch.save(opt.state_dict(), sys.argv[2])
            print(len(opt.state), float(opt.state[params[2]]['step']), tuple(opt.state[params[2]]['max_exp_avg_sq'].shape))
            """,
            [streamed, resaved]);

        Assert.Equal("3 3.0 (1500000,)", output.Trim());
        Assert.Null(StateDictComparison.FirstDifference(await optimizer.StateDictAsync(), StateDictFiles.ReadOptimizer(resaved)));
    }

    [Fact]
    public async Task ReadStateRejectsOtherStep()
    {
        var optimizer = await CreateSmallAsync();
        var shard = fixture.Client.GetGrain<IShardGrain>(ShardKeys.For(optimizer.Name, 0));

        var error = await Assert.ThrowsAsync<OptimizerFaultException>(() => shard.ReadState(optimizer.StepCount + 1, 0, 0));

        Assert.Equal(OptimizerFault.Inconsistent, error.Fault);
        Assert.Contains($"is at step {optimizer.StepCount}, not {optimizer.StepCount + 1}", error.Message);
    }

    [Fact]
    public async Task ReadStateRejectsRangeOutsideState()
    {
        var optimizer = await CreateSmallAsync();
        var shard = fixture.Client.GetGrain<IShardGrain>(ShardKeys.For(optimizer.Name, 0));
        var header = await shard.ReadState(ShardStateChunk.AnyStep, 0, 0);

        var pastEnd = await Assert.ThrowsAsync<OptimizerFaultException>(() => shard.ReadState(header.Step, header.TotalBytes + 1, 1));
        var tooLarge = await Assert.ThrowsAsync<OptimizerFaultException>(() => shard.ReadState(header.Step, 0, ShardStateChunk.MaxBytes + 1));

        Assert.Equal(OptimizerFault.InvalidArgument, pastEnd.Fault);
        Assert.Equal(OptimizerFault.InvalidArgument, tooLarge.Fault);
        Assert.Equal(2 * 6 * sizeof(float), header.TotalBytes);
        Assert.Empty(header.Data);
    }

    [Fact]
    public async Task ReadStateClipsAtEnd()
    {
        var optimizer = await CreateSmallAsync();
        var shard = fixture.Client.GetGrain<IShardGrain>(ShardKeys.For(optimizer.Name, 0));

        var tail = await shard.ReadState(ShardStateChunk.AnyStep, 40, 100);
        var expected = (await optimizer.StateDictAsync()).State[0]["exp_avg_sq"];

        // Bytes 40..48 are the last 2 of exp_avg_sq's 6 float32 elements (exp_avg takes bytes 0..24).
        Assert.Equal(8, tail.Data.Length);
        Assert.True(((Orleans.Optim.Tensors.Tensor)expected!).Data.AsSpan(16, 8).SequenceEqual(tail.Data), "The tail differs from exp_avg_sq's last elements.");
    }

    [Fact]
    public async Task ReadStatesMatchesSingleReads()
    {
        var optimizer = await CreateSteppedAsync();
        var leader = fixture.Client.GetGrain<IShardGrain>(ShardKeys.For(optimizer.Name, 0));
        ShardStateRequest[] requests = [new(3, 100, 64), new(0, 0, 16), new(2, 4_000_000, 1_000_000)];

        var batch = await leader.ReadStates(ShardStateChunk.AnyStep, requests);

        Assert.Equal(requests.Length, batch.Length);
        for (int i = 0; i < requests.Length; i++)
        {
            var single = await fixture.Client.GetGrain<IShardGrain>(ShardKeys.For(optimizer.Name, requests[i].Shard)).ReadState(batch[i].Step, requests[i].Offset, requests[i].Count);
            Assert.True(single.Data.AsSpan().SequenceEqual(batch[i].Data), $"Batched read {i} differs from the single read of shard {requests[i].Shard}.");
            Assert.Equal(single.Silo, batch[i].Silo);
        }
    }

    [Fact]
    public async Task ReadStatesRejectsOversizedBatch()
    {
        var optimizer = await CreateSmallAsync();
        var leader = fixture.Client.GetGrain<IShardGrain>(ShardKeys.For(optimizer.Name, 0));
        ShardStateRequest[] requests = [new(0, 0, ShardStateChunk.MaxBytes), new(0, 0, 1)];

        var error = await Assert.ThrowsAsync<OptimizerFaultException>(() => leader.ReadStates(ShardStateChunk.AnyStep, requests));

        Assert.Equal(OptimizerFault.InvalidArgument, error.Fault);
        Assert.Contains("2 requests of 16777217 bytes", error.Message);
    }

    [Fact]
    public async Task RepeatedSaveStaysByteIdentical()
    {
        // The second save and state dict of a handle batch the shards of each silo, which the first cannot.
        var optimizer = await CreateSteppedAsync();
        string first = Path.Combine(_folder, "first.pt");
        string second = Path.Combine(_folder, "second.pt");
        string gathered = Path.Combine(_folder, "gathered.pt");

        await optimizer.SaveAsync(first);
        await optimizer.SaveAsync(second);
        _ = await optimizer.StateDictAsync();
        StateDictFiles.WriteOptimizer(gathered, await optimizer.StateDictAsync());

        Assert.True(File.ReadAllBytes(first).AsSpan().SequenceEqual(File.ReadAllBytes(second)), "The batched save differs from the first save.");
        Assert.True(File.ReadAllBytes(first).AsSpan().SequenceEqual(File.ReadAllBytes(gathered)), "The batched state dict differs from the first save.");
    }

    [Fact]
    public void PlanJoinsAndSplitsRanges()
    {
        var plan = ShardChunkStream.Plan(
            [new ChunkRequest(0, 0, 40), new ChunkRequest(0, 40, 40), new ChunkRequest(1, 0, 100), new ChunkRequest(0, 80, 0), new ChunkRequest(2, 8, 30)],
            chunkBytes: 64);

        Assert.Equal(
            [new ChunkRequest(0, 0, 40), new ChunkRequest(0, 40, 40), new ChunkRequest(1, 0, 64), new ChunkRequest(1, 64, 36), new ChunkRequest(2, 8, 30)],
            plan);
        Assert.Equal(
            [new ChunkRequest(0, 0, 80), new ChunkRequest(1, 0, 100), new ChunkRequest(2, 8, 30)],
            ShardChunkStream.Plan([new ChunkRequest(0, 0, 40), new ChunkRequest(0, 40, 40), new ChunkRequest(1, 0, 100), new ChunkRequest(2, 8, 30)], chunkBytes: 100));
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>
    /// An AdamW with AMSGrad over two groups, three steps in, where one parameter never had a gradient and so has no
    /// state, and the state order differs from the param-ID order.
    /// </summary>
    private async Task<ClusterOptimizer> CreateSteppedAsync()
    {
        var spec = new OptimizerSpec
        {
            Algorithm = "AdamW",
            DefaultOptions = [new("lr", 0.01), new("amsgrad", true)],
            Groups =
            [
                new ParamGroupSpec([], [new ParameterSpec("0.weight", [4, 9]), new ParameterSpec("0.bias", [4]), new ParameterSpec("1.weight", [LargeElements])]),
                new ParamGroupSpec([new("lr", 0.1)], [new ParameterSpec("2.weight", [3, 4])]),
            ],
            MaxShardElements = 1_200_000,
        };
        var random = new Random(7);
        var optimizer = await ClusterOptimizer.CreateAsync(
            fixture.Client, "streamed-" + Guid.NewGuid().ToString("N"), spec, [Random(random, 36), Random(random, 4), Random(random, LargeElements), Random(random, 12)]);
        for (int step = 1; step <= 3; step++)
        {
            await optimizer.StepAsync(0, [step == 1 ? null : Random(random, 36), null, Random(random, LargeElements), Random(random, 12)]);
        }

        return optimizer;
    }

    private async Task<ClusterOptimizer> CreateSmallAsync()
    {
        var spec = new OptimizerSpec
        {
            Algorithm = "Adam",
            DefaultOptions = [new("lr", 0.01)],
            Groups = [new ParamGroupSpec([], [new ParameterSpec("w", [6])])],
        };
        var optimizer = await ClusterOptimizer.CreateAsync(fixture.Client, "read-state-" + Guid.NewGuid().ToString("N"), spec, [Random(new Random(3), 6)]);
        await optimizer.StepAsync(0, [Random(new Random(4), 6)]);
        return optimizer;
    }

    private static float[] Random(Random random, int length) => Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
}
