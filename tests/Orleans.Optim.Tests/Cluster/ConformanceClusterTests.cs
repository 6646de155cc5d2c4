using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Cluster;

/// <summary>
/// Every project fixture replayed through the two-silo cluster with parameters split into small shards: each step,
/// the final state dict, the .pt round trip, the torch-written .pt, and resuming from the step-3 file.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ConformanceClusterTests(ClusterFixture fixture)
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.GetFiles(RepositoryPaths.TorchFixtures, "*.json").Order())
        {
            string name = Path.GetFileNameWithoutExtension(file);
            if (name != "group_keys" && !name.EndsWith("_after_step3", StringComparison.Ordinal))
            {
                data.Add(name);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task CaseMatchesTorchBitForBit(string caseName)
    {
        var runner = new ConformanceRunner(fixture.Client, maxShardElements: 4, outputDirectory: null);

        var result = await runner.RunAsync(Path.Combine(RepositoryPaths.TorchFixtures, caseName + ".json"));

        Assert.Null(result.Detail);
        Assert.Equal(CaseOutcome.Pass, result.Outcome);
    }
}
