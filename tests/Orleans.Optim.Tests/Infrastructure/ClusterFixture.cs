using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Optim.Hosting;
using Orleans.TestingHost;

namespace Orleans.Optim.Tests.Infrastructure;

/// <summary>
/// A real two-silo Orleans cluster in the test process, with the optimizer grains and in-memory grain storage,
/// shared by the tests of one collection.
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    /// <summary>Step timeout of the test cluster's shards, short so that straggler tests finish quickly.</summary>
    public static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(3);

    private InProcessTestCluster? _cluster;

    /// <summary>The local folder of the cluster's sharded checkpoints.</summary>
    public string CheckpointFolder { get; } = Directory.CreateTempSubdirectory("orleans-optim-fixture-checkpoints-").FullName;

    /// <summary>The running cluster.</summary>
    public InProcessTestCluster Cluster => _cluster ?? throw new InvalidOperationException("The cluster is not started.");

    /// <summary>The cluster's client.</summary>
    public IClusterClient Client => Cluster.Client;

    /// <inheritdoc/>
    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddMemoryGrainStorage(OptimizerSiloBuilderExtensions.StorageName);
            silo.AddOptimizerGrains(
                shards => shards.StepTimeout = StepTimeout,
                checkpoints =>
                {
                    checkpoints.Path = CheckpointFolder;
                    checkpoints.KeepLast = 3;
                });
        });
        builder.ConfigureClient(client => client.Services.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromMinutes(2)));
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    /// <inheritdoc/>
    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }

        Directory.Delete(CheckpointFolder, recursive: true);
    }
}

/// <summary>The collection whose tests share one <see cref="ClusterFixture"/>.</summary>
[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    /// <summary>Collection name.</summary>
    public const string Name = "cluster";
}
