using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Cluster;

namespace QcowActors.Actors.Cluster;

/// <summary>
/// The HTTP URL of every other member, so a node that can no longer locate an image (its shard
/// region has handed off while it stops) can still pass a request on to a node that can.
/// </summary>
public sealed class ClusterPeers
{
    private readonly ConcurrentDictionary<string, string> _urls = new(StringComparer.Ordinal);

    public void Set(string node, string url) => _urls[node] = url;

    public void Remove(string node) => _urls.TryRemove(node, out _);

    /// <summary>The other nodes' URLs, in a different order per call so retries spread.</summary>
    public IReadOnlyList<string> Urls()
    {
        var urls = _urls.Values.ToArray();
        Random.Shared.Shuffle(urls);
        return urls;
    }
}

/// <summary>
/// Runs at /user/peer-directory on every node: asks each member that comes up for its HTTP URL
/// (the same actor on that node answers) and forgets members that leave.
/// </summary>
public sealed class PeerDirectory : ReceiveActor, IWithTimers
{
    public const string Name = "peer-directory";

    private sealed record GetPeerUrl;
    private sealed record PeerUrl(string Node, string? Url);
    private sealed record AskAgain(Address Address);

    public ITimerScheduler Timers { get; set; } = null!;

    public PeerDirectory(ClusterNode node, ClusterPeers peers)
    {
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        Receive<ClusterEvent.CurrentClusterState>(s =>
        {
            foreach (var m in s.Members.Where(m => m.Status == MemberStatus.Up)) Ask(m.Address);
        });
        Receive<ClusterEvent.MemberUp>(up => Ask(up.Member.Address));
        Receive<ClusterEvent.MemberRemoved>(r => peers.Remove(r.Member.Address.ToString()));
        Receive<GetPeerUrl>(_ => Sender.Tell(new PeerUrl(node.Address, node.HttpUrl)));
        Receive<PeerUrl>(p =>
        {
            if (p.Url is not null) peers.Set(p.Node, p.Url);
            else if (Address.Parse(p.Node) is { } a) Timers.StartSingleTimer(p.Node, new AskAgain(a), TimeSpan.FromSeconds(1));
        });
        Receive<AskAgain>(a => Ask(a.Address));

        void Ask(Address address)
        {
            if (address.Equals(cluster.SelfAddress)) return;
            Context.ActorSelection(new RootActorPath(address) / "user" / Name).Tell(new GetPeerUrl());
        }
    }

    protected override void PreStart()
        => Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.MemberUp), typeof(ClusterEvent.MemberRemoved));

    protected override void PostStop() => Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);

    public static Props Props(ClusterNode node, ClusterPeers peers) => Akka.Actor.Props.Create(() => new PeerDirectory(node, peers));
}
