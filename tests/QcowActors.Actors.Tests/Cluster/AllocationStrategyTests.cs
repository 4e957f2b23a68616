using System.Collections.Immutable;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using QcowActors.Actors.Cluster;
using Xunit;

namespace QcowActors.Actors.Tests.Cluster;

/// <summary>
/// Shards are never moved while their node lives: a move would cut transfers. (Where a new shard
/// goes is the least-shard placement's, which needs a cluster: the cluster tests place shards.)
/// </summary>
public sealed class AllocationStrategyTests : TestKit
{
    [Fact]
    public async Task Nothing_is_ever_rebalanced_however_uneven_the_placement()
    {
        var strategy = new NoRebalanceAllocationStrategy();
        var busy = CreateTestProbe().Ref;
        var idle = CreateTestProbe().Ref;
        var allocations = ImmutableDictionary<IActorRef, IImmutableList<string>>.Empty
            .Add(busy, ImmutableList.Create(Enumerable.Range(0, 60).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray()))
            .Add(idle, ImmutableList<string>.Empty);

        // 60 shards against none: a least-shard strategy would move some; this one moves none.
        Assert.Empty(await strategy.Rebalance(allocations, ImmutableHashSet<string>.Empty));
    }
}
