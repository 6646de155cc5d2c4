using Orleans.Optim.Algorithms;
using Orleans.Optim.Cli.Conformance;
using Orleans.Optim.Engine;
using Orleans.Optim.Tests.Cluster;
using Orleans.Optim.Tests.Infrastructure;

namespace Orleans.Optim.Tests.Algorithms;

/// <summary>Every fixture replayed in one process on every kernel path, without Orleans.</summary>
public sealed class LocalReplayTests
{
    public static TheoryData<string> Cases() => ConformanceClusterTests.Cases();

    [Theory]
    [MemberData(nameof(Cases))]
    public void LocalReplayMatchesTorch(string caseName)
    {
        var referenceCase = ReferenceCase.Load(Path.Combine(RepositoryPaths.TorchFixtures, caseName + ".json"));
        var ids = referenceCase.ParamIndicesById;

        foreach (var path in Enum.GetValues<KernelPath>())
        {
            var optimizer = new LocalOptimizer(referenceCase.ToSpec(maxShardElements: 6), ids.Select(i => (float[])referenceCase.ParamsInitial[i].Clone()).ToList(), path);
            foreach (var step in referenceCase.Steps)
            {
                foreach (var change in referenceCase.Changes.Where(c => c.BeforeStep == step.Number))
                {
                    optimizer.SetHyperparameter(change.Group, change.Key, change.Value);
                }

                optimizer.Step(ids.Select(i => step.Gradients[i]).ToList());
                for (int id = 0; id < ids.Count; id++)
                {
                    Assert.Null(StateDictComparison.ArrayDifference(step.ParamsAfter[ids[id]], optimizer.Parameter(id)));
                }
            }

            Assert.Null(StateDictComparison.FirstDifference(referenceCase.FinalStateDict, optimizer.StateDict()));
        }
    }
}
