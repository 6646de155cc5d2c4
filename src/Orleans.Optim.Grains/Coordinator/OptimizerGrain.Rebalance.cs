using Microsoft.Extensions.Logging;
using Orleans.Optim.Wire;
using Orleans.Runtime;

namespace Orleans.Optim.Coordinator;

/// <summary>
/// The coordinator's share of scale-out: when the set of active silos changes (a silo joins or leaves) it moves
/// shards so that each silo holds an even share, moving as few as it can.
/// </summary>
internal sealed partial class OptimizerGrain
{
    private static readonly TimeSpan s_membershipPollPeriod = TimeSpan.FromSeconds(5);

    private IGrainTimer? _membershipTimer;
    private HashSet<string>? _knownSilos;

    /// <inheritdoc/>
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _membershipTimer = this.RegisterGrainTimer(
            WatchMembershipAsync,
            new GrainTimerCreationOptions { DueTime = s_membershipPollPeriod, Period = s_membershipPollPeriod, Interleave = false, KeepAlive = false });
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public async Task<RebalanceResult> Rebalance()
    {
        RequireExists();
        var silos = (await GrainFactory.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Keys
            .OrderBy(s => s.ToString(), StringComparer.Ordinal)
            .ToList();
        var layout = Layout();
        var statuses = await Task.WhenAll(layout.Shards.Select(s => Shard(s.Index).GetStatus()));
        var before = statuses.GroupBy(s => s.Silo).ToDictionary(g => g.Key, g => g.Count());

        // Even shares: every silo gets floor(n / k) shards and the first n mod k silos one more.
        int n = statuses.Length;
        int k = silos.Count;
        var quota = silos.Select((silo, i) => (Silo: silo, Target: n / k + (i < n % k ? 1 : 0))).ToList();
        var held = silos.ToDictionary(s => s.ToString(), _ => new List<int>());
        var homeless = new List<int>();
        for (int i = 0; i < statuses.Length; i++)
        {
            if (held.TryGetValue(statuses[i].Silo, out var list))
            {
                list.Add(layout.Shards[i].Index);
            }
            else
            {
                homeless.Add(layout.Shards[i].Index);
            }
        }

        // Take the excess from silos above their quota (the highest shard indices first), then fill silos below it.
        var toMove = new List<int>(homeless);
        foreach (var (silo, target) in quota)
        {
            var list = held[silo.ToString()];
            while (list.Count > target)
            {
                toMove.Add(list[^1]);
                list.RemoveAt(list.Count - 1);
            }
        }

        var moves = new List<Task>();
        foreach (var (silo, target) in quota)
        {
            var list = held[silo.ToString()];
            while (list.Count < target && toMove.Count > 0)
            {
                int shard = toMove[^1];
                toMove.RemoveAt(toMove.Count - 1);
                list.Add(shard);
                moves.Add(Shard(shard).MoveTo(silo));
            }
        }

        await Task.WhenAll(moves);
        if (moves.Count > 0)
        {
            LogRebalanced(logger, Name, moves.Count, k);
        }

        return new RebalanceResult(before, moves.Count);
    }

    private async Task WatchMembershipAsync(CancellationToken cancellationToken)
    {
        if (persisted.State.Status != OptimizerStatus.Ready)
        {
            return;
        }

        try
        {
            var active = (await GrainFactory.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Keys.Select(s => s.ToString()).ToHashSet();
            // The first look also checks the spread, because a silo may have joined before this activation started.
            bool changed = _knownSilos is null || !active.SetEquals(_knownSilos);
            _knownSilos = active;
            if (changed)
            {
                await Rebalance();
            }
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or OptimizerFaultException)
        {
            LogRebalanceFailed(logger, e, Name);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Optimizer {Optimizer} moved {Moved} shards to spread them over {Silos} silos")]
    private static partial void LogRebalanced(ILogger logger, string optimizer, int moved, int silos);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Optimizer {Optimizer} failed to rebalance its shards; it tries again when membership changes")]
    private static partial void LogRebalanceFailed(ILogger logger, Exception exception, string optimizer);
}
