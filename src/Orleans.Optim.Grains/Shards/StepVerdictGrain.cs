using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Optim.Grains;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Shards;

/// <summary>
/// Gives every shard of an optimizer the same skip-or-apply verdict for a synchronous step, so that a non-finite
/// gradient on one shard skips the step everywhere, as torch's GradScaler skips <c>optimizer.step()</c> as a whole.
/// </summary>
/// <remarks>Only optimizers created with non-finite step skipping use it; it is reentrant so that all shards can wait on it at once.</remarks>
[Reentrant]
internal sealed class StepVerdictGrain(IOptions<ShardOptions> options) : Grain, IStepVerdictGrain
{
    private readonly Dictionary<long, Ballot> _ballots = [];
    private int _shardCount;

    /// <inheritdoc/>
    public async Task<bool> Vote(long step, int shardIndex, bool finite)
    {
        if (shardIndex >= _shardCount)
        {
            // The shard count grows when a param group is added; the coordinator has the current layout.
            var description = await GrainFactory.GetGrain<IOptimizerGrain>(this.GetPrimaryKeyString()).Describe();
            _shardCount = description.Shards.Length;
        }

        if (!_ballots.TryGetValue(step, out var ballot))
        {
            ballot = new Ballot();
            _ballots[step] = ballot;

            // Forget the verdicts of steps long done.
            foreach (long old in _ballots.Keys.Where(s => s < step - 2).ToList())
            {
                _ballots.Remove(old);
            }
        }

        ballot.Voters.Add(shardIndex);
        ballot.AnyNonFinite |= !finite;
        if (ballot.Voters.Count >= _shardCount)
        {
            ballot.Verdict.TrySetResult(ballot.AnyNonFinite);
        }

        try
        {
            return await ballot.Verdict.Task.WaitAsync(options.Value.StepTimeout);
        }
        catch (TimeoutException)
        {
            throw new OptimizerFaultException(
                OptimizerFault.StepTimedOut,
                $"Step {step} of optimizer '{this.GetPrimaryKeyString()}': only {ballot.Voters.Count} of {_shardCount} shards reported whether their gradients are finite.");
        }
    }

    private sealed class Ballot
    {
        public HashSet<int> Voters { get; } = [];

        public bool AnyNonFinite { get; set; }

        public TaskCompletionSource<bool> Verdict { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
