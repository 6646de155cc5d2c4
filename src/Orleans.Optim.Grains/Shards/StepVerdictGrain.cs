using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Optim.Grains;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Shards;

/// <summary>
/// Gives every shard of an optimizer the same verdict on an attempt at a synchronous step, so that the step is applied
/// on all shards or on none. A non-finite gradient on one shard skips the step everywhere (as torch's GradScaler
/// skips <c>optimizer.step()</c> as a whole), and a shard that times out waiting for a rank abandons the attempt
/// everywhere, even on the shards that already have every gradient.
/// </summary>
/// <remarks>
/// The grain is reentrant so that all shards can wait on it at once. Its ballots live in memory only: if its silo
/// dies, the shards that wait on it fail the step as inconsistent and the optimizer recovers from a checkpoint.
/// </remarks>
[Reentrant]
internal sealed partial class StepVerdictGrain(IOptions<ShardOptions> options, ILogger<StepVerdictGrain> logger) : Grain, IStepVerdictGrain
{
    /// <summary>Extra time over the step timeout before the grain itself abandons an attempt, so that a shard's own timeout, which names the missing ranks, comes first.</summary>
    private static readonly TimeSpan s_verdictGrace = TimeSpan.FromSeconds(5);

    private readonly Dictionary<long, Ballot> _ballots = [];
    private int _shardCount;
    private Guid _countTimeline;

    private string Name => this.GetPrimaryKeyString();

    /// <inheritdoc/>
    public async Task<StepVerdict> Vote(long step, int attempt, Guid timeline, int shardIndex, bool finite)
    {
        await EnsureShardCountAsync(shardIndex, timeline);
        if (GetBallot(step, attempt, timeline) is not { } ballot)
        {
            return Stale(step);
        }

        ballot.Voters.Add(shardIndex);
        ballot.AnyNonFinite |= !finite;
        if (ballot.AbandonReason is null && ballot.Voters.Count >= _shardCount)
        {
            // Every shard has every gradient. The ballot goes now, so that a rollback that repeats this step number
            // starts a fresh one.
            _ballots.Remove(step);
            ballot.Verdict.TrySetResult(new StepVerdict(ballot.AnyNonFinite ? StepOutcome.Skip : StepOutcome.Apply, null));
        }

        var timeout = options.Value.StepTimeout + s_verdictGrace;
        try
        {
            return await ballot.Verdict.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            var missing = Enumerable.Range(0, _shardCount).Where(i => !ballot.Voters.Contains(i));
            string reason =
                $"Step {step} of optimizer '{Name}' was abandoned: shard(s) {string.Join(", ", missing)} did not get every rank's gradient " +
                $"within {timeout.TotalSeconds:0.#} s. The optimizer stays at step {step - 1}; push step {step} again from every rank.";
            await AbandonAsync(step, ballot, exceptShard: -1, reason);
            return await ballot.Verdict.Task;
        }
    }

    /// <inheritdoc/>
    public async Task Abandon(long step, int attempt, Guid timeline, int shardIndex, string reason)
    {
        await EnsureShardCountAsync(shardIndex, timeline);
        if (GetBallot(step, attempt, timeline) is { } ballot)
        {
            await AbandonAsync(step, ballot, shardIndex, reason);
        }
    }

    /// <inheritdoc/>
    public Task SetShardCount(Guid timeline, int shardCount)
    {
        _shardCount = shardCount;
        _countTimeline = timeline;
        return Task.CompletedTask;
    }

    /// <summary>
    /// Returns the ballot of this attempt, replacing an older attempt's or another timeline's, or
    /// <see langword="null"/> when a newer attempt of the same timeline exists, so the caller's attempt was abandoned.
    /// </summary>
    /// <remarks>
    /// A ballot only ever counts reports of one attempt of one timeline, so a shard's report from before a rollback
    /// cannot complete a ballot after it. A late report from an old timeline replaces the current ballot, which then
    /// fails its step: a needless retry, never a step applied on some shards only.
    /// </remarks>
    private Ballot? GetBallot(long step, int attempt, Guid timeline)
    {
        if (_ballots.TryGetValue(step, out var ballot))
        {
            if (ballot.Timeline == timeline && ballot.Attempt == attempt)
            {
                return ballot;
            }

            if (ballot.Timeline == timeline && ballot.Attempt > attempt)
            {
                return null;
            }

            // A shard moves to the next attempt only after this one was abandoned, and to a new timeline only after
            // a restore dropped its collected gradients, so the old ballot's step cannot complete any more.
            ballot.Verdict.TrySetResult(new StepVerdict(
                StepOutcome.Abandon,
                $"Step {step} of optimizer '{Name}' was abandoned because the optimizer was restored or the step was retried; push it again from every rank."));
        }

        ballot = new Ballot(attempt, timeline);
        _ballots[step] = ballot;

        // Abandoned ballots stay for the late shards of their attempt. Ballots of steps long done are removed.
        foreach (long old in _ballots.Keys.Where(s => s < step - 2).ToList())
        {
            _ballots.Remove(old);
        }

        return ballot;
    }

    private StepVerdict Stale(long step) => new(
        StepOutcome.Abandon,
        $"Step {step} of optimizer '{Name}' was abandoned earlier by another shard; push step {step} again from every rank.");

    /// <summary>
    /// Tells every shard but <paramref name="exceptShard"/> to drop the attempt, then gives the verdict to the shards
    /// that wait for it. Telling the shards first means no rank hears of the failure while a shard still holds the
    /// attempt's gradients, so a rank's next push always starts a new attempt.
    /// </summary>
    private async Task AbandonAsync(long step, Ballot ballot, int exceptShard, string reason)
    {
        if (ballot.AbandonReason is not null || ballot.Verdict.Task.IsCompleted)
        {
            return;
        }

        ballot.AbandonReason = reason;
        LogAbandoned(logger, Name, step, ballot.Attempt, reason);
        await Task.WhenAll(Enumerable.Range(0, _shardCount).Where(i => i != exceptShard).Select(async index =>
        {
            try
            {
                await GrainFactory.GetGrain<IShardGrain>(ShardKeys.For(Name, index)).AbandonStep(step, ballot.Attempt, ballot.Timeline, reason);
            }
            catch (Exception e)
            {
                // The shard's silo may be gone; the shard then comes back without the attempt's gradients anyway.
                LogAbandonNotDelivered(logger, e, Name, step, index);
            }
        }));
        ballot.Verdict.TrySetResult(new StepVerdict(StepOutcome.Abandon, reason));
    }

    private async Task EnsureShardCountAsync(int shardIndex, Guid timeline)
    {
        if (shardIndex >= _shardCount || timeline != _countTimeline)
        {
            // The coordinator sets the count whenever the layout changes; this grain requests it after it was
            // reactivated, or when a shard reports from a timeline it has not seen.
            var description = await GrainFactory.GetGrain<IOptimizerGrain>(Name).Describe();
            _shardCount = description.Shards.Length;
            _countTimeline = timeline;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Step {Step} attempt {Attempt} of optimizer {Optimizer} abandoned: {Reason}")]
    private static partial void LogAbandoned(ILogger logger, string optimizer, long step, int attempt, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not tell shard {Shard} of optimizer {Optimizer} that step {Step} was abandoned")]
    private static partial void LogAbandonNotDelivered(ILogger logger, Exception exception, string optimizer, long step, int shard);

    /// <summary>The shards' reports on one attempt at one step.</summary>
    private sealed class Ballot(int attempt, Guid timeline)
    {
        public int Attempt { get; } = attempt;

        public Guid Timeline { get; } = timeline;

        public HashSet<int> Voters { get; } = [];

        public bool AnyNonFinite { get; set; }

        public string? AbandonReason { get; set; }

        public TaskCompletionSource<StepVerdict> Verdict { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
