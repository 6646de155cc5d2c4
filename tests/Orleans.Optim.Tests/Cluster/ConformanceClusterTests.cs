using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Cluster;

/// <summary>Every project fixture replayed through the two-silo cluster, with parameters split into small shards.</summary>
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
        var referenceCase = ReferenceCase.Load(Path.Combine(RepositoryPaths.TorchFixtures, caseName + ".json"));

        var (difference, _) = await CaseReplay.RunAsync(fixture.Client, referenceCase, "conformance-" + caseName, maxShardElements: 4);

        Assert.Null(difference);
    }
}
