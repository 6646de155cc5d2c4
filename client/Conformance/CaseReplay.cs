using Orleans.Optim.Client;
using Orleans.Optim.StateDicts;

namespace Orleans.Optim.Cli.Conformance;

/// <summary>Replays a reference case through a live cluster and reports the first difference from PyTorch.</summary>
public static class CaseReplay
{
    /// <summary>
    /// Creates an optimizer for the case, pushes every step's gradients (applying the recorded hyperparameter
    /// changes), and compares the parameters after every step and the final state dict with the case.
    /// </summary>
    /// <param name="grains">The cluster client's grain factory.</param>
    /// <param name="referenceCase">The case.</param>
    /// <param name="optimizerName">A fresh optimizer name.</param>
    /// <param name="maxShardElements">Shard size; small values split the case's parameters over several shards.</param>
    /// <returns>The first difference, or <see langword="null"/> when everything matches bit for bit, and the final state dict.</returns>
    public static async Task<(string? Difference, OptimizerStateDict? Final)> RunAsync(
        IGrainFactory grains, ReferenceCase referenceCase, string optimizerName, int maxShardElements)
    {
        var ids = referenceCase.ParamIndicesById;
        var optimizer = await ClusterOptimizer.CreateAsync(
            grains, optimizerName, referenceCase.ToSpec(maxShardElements), ids.Select(i => referenceCase.ParamsInitial[i]).ToList());

        string? difference = await RunStepsAsync(optimizer, referenceCase, firstStep: 1);
        if (difference is not null)
        {
            return (difference, null);
        }

        var final = await optimizer.StateDictAsync();
        difference = StateDictComparison.FirstDifference(referenceCase.FinalStateDict, final);
        return (difference is null ? null : "final state dict: " + difference, final);
    }

    /// <summary>
    /// Pushes the case's steps from <paramref name="firstStep"/> on and compares the parameters after each.
    /// </summary>
    /// <returns>The first difference, or <see langword="null"/>.</returns>
    public static async Task<string?> RunStepsAsync(ClusterOptimizer optimizer, ReferenceCase referenceCase, int firstStep)
    {
        var ids = referenceCase.ParamIndicesById;
        foreach (var step in referenceCase.Steps.Where(s => s.Number >= firstStep))
        {
            foreach (var change in referenceCase.Changes.Where(c => c.BeforeStep == step.Number))
            {
                await optimizer.SetHyperparameterAsync(change.Group, change.Key, change.Value);
            }

            var updated = await optimizer.StepAsync(0, ids.Select(i => step.Gradients[i]).ToList());
            for (int id = 0; id < ids.Count; id++)
            {
                string? difference = StateDictComparison.ArrayDifference(step.ParamsAfter[ids[id]], updated[id]);
                if (difference is not null)
                {
                    return $"step {step.Number}, param {id}: {difference}";
                }
            }
        }

        return null;
    }
}
