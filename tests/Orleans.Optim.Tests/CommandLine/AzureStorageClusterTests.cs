using System.Diagnostics;
using System.Text.Json;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Optim.Cli.Commands;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Client;
using Orleans.Optim.Coordinator;
using Orleans.Optim.Grains;
using Orleans.Optim.Hosting;
using Orleans.Optim.Layout;
using Orleans.Optim.Shards;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tests.Infrastructure;
using Orleans.Optim.Wire;
using Orleans.Serialization;
using Orleans.Storage;
using Xunit.Abstractions;

namespace Orleans.Optim.Tests.CommandLine;

/// <summary>
/// Silo processes in AzureStorage clustering mode on an Azurite of this class's own, with the training client
/// finding them through the membership table, as README.md's "Cluster mode on Azure Storage" shows.
/// </summary>
public sealed class AzureStorageClusterTests(AzuriteFixture azurite, ITestOutputHelper output) : IClassFixture<AzuriteFixture>, IDisposable
{
    /// <summary>Time a silo gets to join the membership table; the first one also creates the table.</summary>
    private static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(90);

    private readonly List<(SiloProcess Process, int SiloPort)> _silos = [];
    private readonly string _folder = Directory.CreateTempSubdirectory("orleans-optim-azure-").FullName;
    private readonly string _clusterId = "test-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task TrainingSpreadsShardsOverThreeSilos()
    {
        await StartSilosAsync(3);

        var result = CommandRunner.RunClient(
            ["train", "--azure-storage", azurite.ConnectionString, "--cluster-id", _clusterId, "--epochs", "2", "--shard-size", "300", "--checkpoint-dir", "run"],
            _folder);

        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains($"Connected to the cluster through the Azure Table membership at http://127.0.0.1:{azurite.TablePort}/devstoreaccount1.", result.Output);
        Assert.Contains("4 parameters in 11 shards on 3 silo(s)", result.Output);
        Assert.Contains("epoch   2/2", result.Output);
        Assert.True(File.Exists(Path.Combine(_folder, "run", "epoch-0002", "optimizer.pt")));

        // The environment variable reaches the same cluster: the optimizer that run created is found there.
        string name = OptimizerName(result.Output);
        var reused = CommandRunner.RunClient(
            ["train", "--cluster-id", _clusterId, "--epochs", "1", "--checkpoint-dir", "other", "--name", name],
            _folder,
            environment: new Dictionary<string, string> { [ClusterOptions.AzureStorageVariable] = azurite.ConnectionString });

        Assert.Equal(1, reused.ExitCode);
        Assert.Contains($"Optimizer '{name}' already exists in the cluster", reused.Error);
    }

    [Fact]
    public async Task GrainStateBlobsUseOrleansBinarySerializer()
    {
        // Writing every step puts the Adam state (exp_avg, exp_avg_sq) into the blobs, not only the initial values.
        await StartSilosAsync(1, ("Shards:PersistEverySteps", "1"));
        string name = "blob-" + Guid.NewGuid().ToString("N")[..8];
        var result = CommandRunner.RunClient(
            ["train", "--azure-storage", azurite.ConnectionString, "--cluster-id", _clusterId, "--epochs", "1", "--shard-size", "300", "--checkpoint-dir", "run", "--name", name],
            _folder);
        Assert.True(result.ExitCode == 0, result.Error);

        var container = azurite.Blobs().GetBlobContainerClient(OptimizerSiloConfiguration.AzureBlobContainerName);
        var shardBlobs = new List<string>();
        string? optimizerBlob = null;
        await foreach (var blob in container.GetBlobsAsync())
        {
            if (blob.Name.Contains($"/{name}/", StringComparison.Ordinal) && blob.Name.StartsWith("shard-", StringComparison.Ordinal))
            {
                shardBlobs.Add(blob.Name);
            }
            else if (blob.Name.Contains($"/{name}.", StringComparison.Ordinal) && blob.Name.StartsWith("optimizer-", StringComparison.Ordinal))
            {
                optimizerBlob = blob.Name;
            }
        }

        Assert.Equal(11, shardBlobs.Count);
        Assert.NotNull(optimizerBlob);

        using var services = SerializerServices();
        var binary = new OrleansGrainStorageSerializer(services.Services.GetRequiredService<Serializer>());
        var json = new JsonGrainStorageSerializer(services.Services.GetRequiredService<OrleansJsonSerializer>());

        // Shard 0 contains the first 300 elements of the 32x64 weight.
        string shardBlob = shardBlobs.Single(b => b.EndsWith($"/{name}/0.json", StringComparison.Ordinal));
        byte[] bytes = (await container.GetBlobClient(shardBlob).DownloadContentAsync()).Value.Content.ToArray();
        Assert.NotEqual((byte)'{', bytes[0]);
        Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(bytes));

        var state = binary.Deserialize<ShardGrainState>(new BinaryData(bytes));
        Assert.NotNull(state);
        Assert.NotNull(state.Config);
        Assert.Equal(300 * sizeof(float), state.Values?.Length);
        Assert.Equal(23, state.Step);
        Assert.NotEmpty(state.State);

        // The same state written by Orleans' default JSON serializer, for comparison.
        var jsonData = json.Serialize(state);
        int jsonLength = jsonData.ToArray().Length;

        // Neither serializer reads the other's format.
        Assert.ThrowsAny<Exception>(() => json.Deserialize<ShardGrainState>(new BinaryData(bytes)));
        Assert.ThrowsAny<Exception>(() => binary.Deserialize<ShardGrainState>(jsonData));

        output.WriteLine($"shard blob {shardBlob}: {bytes.Length} bytes with the Orleans binary serializer, {jsonLength} bytes as JSON");
        // JSON writes the byte arrays as base64, a third longer, so a blob of at most 3/4 of the JSON length is binary.
        Assert.True(bytes.Length * 4 <= jsonLength * 3, $"The blob has {bytes.Length} bytes and the same state as JSON {jsonLength}; expected at most 3/4 of the JSON length.");

        byte[] optimizerBytes = (await container.GetBlobClient(optimizerBlob).DownloadContentAsync()).Value.Content.ToArray();
        var optimizerState = binary.Deserialize<OptimizerGrainState>(new BinaryData(optimizerBytes));
        Assert.NotNull(optimizerState);
        Assert.Equal("Adam", optimizerState.Spec?.Algorithm);
    }

    [Fact]
    public async Task KilledSiloRunEndsBitIdentical()
    {
        // The reference: the same job without a failure, on the embedded cluster (the numbers do not depend on the
        // cluster).
        string[] job = ["--epochs", "8", "--workers", "4", "--shard-size", "300", "--sharded-checkpoint-every", "10"];
        var reference = CommandRunner.RunClient(["train", .. job, "--checkpoint-dir", "reference", "--checkpoint-every", "0"], _folder);
        Assert.True(reference.ExitCode == 0, reference.Error);

        await StartSilosAsync(3);
        var startInfo = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _folder,
        };
        startInfo.Environment.Remove(ClusterOptions.AzureStorageVariable);
        foreach (string argument in (string[])[Path.Combine(AppContext.BaseDirectory, "client.dll"), "train", .. job, "--checkpoint-dir", "killed", "--checkpoint-every", "0",
            "--azure-storage", azurite.ConnectionString, "--cluster-id", _clusterId, "--response-timeout", "20"])
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var client = Process.Start(startInfo)!;
        var lines = new List<string>();
        var errors = client.StandardError.ReadToEndAsync();
        bool killed = false;
        var clock = Stopwatch.StartNew();
        string? line;
        while ((line = await client.StandardOutput.ReadLineAsync()) is not null && clock.Elapsed < TimeSpan.FromMinutes(8))
        {
            lines.Add(line);

            // SIGKILL one silo once the run is past its first sharded checkpoints.
            if (!killed && line.StartsWith("epoch   2/8", StringComparison.Ordinal))
            {
                _silos[1].Process.Kill();
                killed = true;
                output.WriteLine($"killed silo on port {_silos[1].SiloPort} at {clock.Elapsed.TotalSeconds:0.0} s");
            }
        }

        if (!client.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            client.Kill(entireProcessTree: true);
        }

        string text = string.Join("\n", lines);
        output.WriteLine(text);
        Assert.True(killed, "the run ended before the silo could be killed");
        Assert.True(client.ExitCode == 0, $"{text}\n{await errors}");
        Assert.Contains("rolled back to step", text);
        Assert.Contains("epoch   8/8", text);

        foreach (string file in new[] { "optimizer.pt", "model.pt" })
        {
            byte[] expected = File.ReadAllBytes(Path.Combine(_folder, "reference", "epoch-0008", file));
            byte[] actual = File.ReadAllBytes(Path.Combine(_folder, "killed", "epoch-0008", file));
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"{file} differs from the run without a failure");
        }

        // The newest sharded checkpoint, step 180 of 184, is in the blob container; exported without a cluster, it
        // equals the same checkpoint of the reference run, which the embedded cluster kept in a folder.
        string name = OptimizerName(text);
        var listed = CommandRunner.RunClient(["checkpoints", "--azure-storage", azurite.ConnectionString, "--optimizer", name], _folder);
        var exported = CommandRunner.RunClient(
            ["export", "--azure-storage", azurite.ConnectionString, "--checkpoint", "step-000000000180", "--optimizer", name, "--out", "azure-180.pt"], _folder);
        var referenceExport = CommandRunner.RunClient(
            ["export", "--store", Path.Combine("reference", "sharded"), "--checkpoint", "step-000000000180", "--out", "reference-180.pt"], _folder);

        Assert.True(listed.ExitCode == 0, listed.Error);
        Assert.Contains($"{name}  step-000000000180  step 180  Adam", listed.Output);
        Assert.True(exported.ExitCode == 0, exported.Error);
        Assert.True(referenceExport.ExitCode == 0, referenceExport.Error);
        Assert.True(
            File.ReadAllBytes(Path.Combine(_folder, "reference-180.pt")).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(_folder, "azure-180.pt"))),
            "the checkpoint exported from Azure Blob storage differs from the reference run's");
    }

    [Fact]
    public async Task ThreeSiloCheckpointRestoresOnOne()
    {
        // An Adam optimizer of 2,080 elements in shards of 300, spread over three silos, takes three steps and a
        // sharded checkpoint in the blob container.
        await StartSilosAsync(3);
        var spec = new OptimizerSpec
        {
            Algorithm = "Adam",
            DefaultOptions = [new("lr", 0.01)],
            Groups = [new ParamGroupSpec([], [new ParameterSpec("w", [32, 64]), new ParameterSpec("b", [32])])],
            MaxShardElements = 300,
        };
        string source = "three-" + Guid.NewGuid().ToString("N")[..8];
        var random = new Random(3);
        float[][] RandomValues() => [.. new[] { 2048, 32 }.Select(n => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray())];
        CheckpointInfo checkpoint;
        OptimizerStateDict expected;
        float[][] expectedValues;
        using (var host = await ConnectAsync())
        {
            var optimizer = await ClusterOptimizer.CreateAsync(host.Services.GetRequiredService<IClusterClient>(), source, spec, RandomValues());
            for (int step = 0; step < 3; step++)
            {
                await optimizer.StepAsync(0, RandomValues());
            }

            checkpoint = await optimizer.CheckpointAsync();
            expected = await optimizer.StateDictAsync();
            expectedValues = await optimizer.GetParametersAsync();
            Assert.Equal(3, (await optimizer.GetShardStatusesAsync()).Select(s => s.Silo).Distinct().Count());
        }

        foreach (var (silo, _) in _silos)
        {
            silo.Kill();
        }

        // A new cluster of one silo on the same storage account restores it with the written shard size and with
        // another one.
        string single = "one-" + Guid.NewGuid().ToString("N")[..8];
        await StartSilosAsync(single, 1);
        using var singleHost = await ConnectAsync(single);
        var grains = singleHost.Services.GetRequiredService<IClusterClient>();
        foreach (int shardSize in new[] { 300, 1000 })
        {
            var restored = await ClusterOptimizer.CreateFromCheckpointAsync(grains, $"restored-{shardSize}-{source}", source, checkpoint.Id, shardSize);
            var values = await restored.GetParametersAsync();
            var statuses = await restored.GetShardStatusesAsync();

            Assert.Equal(3, restored.StepCount);
            Assert.Equal(shardSize == 300 ? 8 : 4, statuses.Count);
            Assert.Single(statuses.Select(s => s.Silo).Distinct());
            Assert.Null(StateDictComparison.FirstDifference(expected, await restored.StateDictAsync()));
            Assert.Null(StateDictComparison.ArrayDifference(expectedValues[0], values[0]));
            Assert.Null(StateDictComparison.ArrayDifference(expectedValues[1], values[1]));
        }
    }

    [Fact]
    public async Task KilledSiloShardsReactivateElsewhere()
    {
        await StartSilosAsync(3);
        string name = "kill-" + Guid.NewGuid().ToString("N")[..8];
        var result = CommandRunner.RunClient(
            ["train", "--azure-storage", azurite.ConnectionString, "--cluster-id", _clusterId, "--epochs", "1", "--shard-size", "300", "--checkpoint-dir", "run", "--name", name],
            _folder);
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains("in 11 shards on 3 silo(s)", result.Output);

        using var client = await ConnectAsync();
        var cluster = client.Services.GetRequiredService<IClusterClient>();
        var before = new string[11];
        for (int i = 0; i < before.Length; i++)
        {
            before[i] = (await cluster.GetGrain<IShardGrain>(ShardKeys.For(name, i)).GetStatus()).Silo;
        }

        // Kill the silo of shard 0, as a crash would.
        // Orleans writes a silo address as S127.0.0.1:PORT:GENERATION.
        int victimIndex = _silos.FindIndex(s => before[0].Contains($":{s.SiloPort}:", StringComparison.Ordinal));
        Assert.True(victimIndex >= 0, $"No silo process matches shard 0's silo {before[0]}.");
        var (victim, port) = _silos[victimIndex];
        string victimPort = $":{port}:";
        var lost = Enumerable.Range(0, before.Length).Where(i => before[i].Contains(victimPort, StringComparison.Ordinal)).ToList();
        var clock = Stopwatch.StartNew();
        victim.Kill();

        // Each call fails fast or within the 10 s response timeout, so the loop ends by the deadline plus 10 s.
        var deadline = TimeSpan.FromSeconds(120);
        var after = new Dictionary<int, ShardStatus>();
        while (after.Count < lost.Count && clock.Elapsed < deadline)
        {
            foreach (int i in lost.Where(i => !after.ContainsKey(i)))
            {
                try
                {
                    after[i] = await cluster.GetGrain<IShardGrain>(ShardKeys.For(name, i)).GetStatus();
                }
                catch (Exception e) when (e is OrleansException or TimeoutException)
                {
                    // The directory still points at the killed silo until the membership declares it dead.
                }
            }

            await Task.Delay(250);
        }

        output.WriteLine($"{lost.Count} shards of the killed silo answered again after {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal(lost.Count, after.Count);
        foreach (var (index, status) in after)
        {
            Assert.DoesNotContain(victimPort, status.Silo);
            Assert.True(status.HasValues, $"Shard {index} came back without the values written to its blob.");
        }

        Assert.Equal(1, await azurite.CountSilosAsync(_clusterId, "Dead"));
    }

    public void Dispose()
    {
        foreach (var (silo, _) in _silos)
        {
            silo.Dispose();
        }

        Directory.Delete(_folder, recursive: true);
    }

    private Task StartSilosAsync(int count, params (string Key, string Value)[] extraSettings) => StartSilosAsync(_clusterId, count, extraSettings);

    private async Task StartSilosAsync(string clusterId, int count, params (string Key, string Value)[] extraSettings)
    {
        int[] ports = LoopbackPorts.Free(2 * count);
        for (int i = 0; i < count; i++)
        {
            var settings = new Dictionary<string, string>
            {
                ["Clustering"] = "AzureStorage",
                ["AzureStorageConnectionString"] = azurite.ConnectionString,
                ["ClusterId"] = clusterId,
                ["SiloPort"] = $"{ports[2 * i]}",
                ["GatewayPort"] = $"{ports[2 * i + 1]}",
            };
            foreach (var (key, value) in extraSettings)
            {
                settings[key] = value;
            }

            _silos.Add((SiloProcess.Start(settings), ports[2 * i]));
        }

        try
        {
            await azurite.WaitForActiveSilosAsync(clusterId, count, JoinTimeout);
        }
        catch (TimeoutException e)
        {
            string outputs = string.Join("\n", _silos.Select(s => s.Process.HasExited ? $"silo exited with {s.Process.ExitCode}:\n{s.Process.Output}" : "silo still running"));
            throw new TimeoutException($"{e.Message}\n{outputs}", e);
        }
    }

    private Task<IHost> ConnectAsync() => ConnectAsync(_clusterId);

    private async Task<IHost> ConnectAsync(string clusterId)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client => client.ConfigureOptimizerClientWithAzureStorage(
            azurite.ConnectionString, clusterId, responseTimeout: TimeSpan.FromSeconds(10)));
        var host = builder.Build();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await host.StartAsync(timeout.Token);
        return host;
    }

    /// <summary>
    /// An Orleans client host that is built but never started: its services hold the Orleans serializer with the
    /// project's generated codecs and Orleans' default JSON serializer, configured as a silo configures them.
    /// </summary>
    private static IHost SerializerServices()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleansClient(client => client.UseLocalhostClustering());
        return builder.Build();
    }

    private static string OptimizerName(string trainOutput)
    {
        int start = trainOutput.IndexOf("Optimizer '", StringComparison.Ordinal) + "Optimizer '".Length;
        return trainOutput[start..trainOutput.IndexOf('\'', start)];
    }
}
