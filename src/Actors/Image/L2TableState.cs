using Akka.Actor;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// One L2 table and the writes in flight on it. Kept by the supervisor and handed to each
/// incarnation of its <see cref="L2TableActor"/>, so a restarted actor resumes the same table:
/// committed (acknowledged) entries and dirty state are never lost with the actor.
/// </summary>
internal sealed class L2TableState(long l1Index, long hostOffset, ulong[]? entries)
{
    public long L1Index { get; } = l1Index;
    /// <summary>Where the table lives in the file (changes when a shared table is copied).</summary>
    public long HostOffset { get; set; } = hostOffset;
    /// <summary>Raw entries; null until loaded from the file, or while the table is held <see cref="Sparse"/>.</summary>
    public ulong[]? Entries { get; set; } = entries;
    /// <summary>The clean table in compact form (few slots in use); set instead of Entries.</summary>
    public SparseL2Table? Sparse { get; set; }
    public bool IsLoaded => Entries is not null || Sparse is not null;

    /// <summary>
    /// The dense entries, made from the sparse form on first need; true in <paramref name="converted"/>
    /// when that happened (the caller must publish the new array before changing it).
    /// </summary>
    public ulong[] Dense(out bool converted)
    {
        converted = false;
        if (Entries is not null) return Entries;
        Entries = Sparse!.ToDense();
        Sparse = null;
        converted = true;
        return Entries;
    }
    /// <summary>In memory differs from the file at HostOffset.</summary>
    public bool Dirty { get; set; } = entries is not null;
    /// <summary>L2 index → plan that is allocating or filling that cluster.</summary>
    public Dictionary<int, long> InFlight { get; } = [];
    public Dictionary<long, PendingPlan> Plans { get; } = [];
    /// <summary>Requests touching clusters in flight, retried when a plan completes.</summary>
    public List<(object Message, IActorRef Sender)> Waiting { get; } = [];
    public long NextPlanId { get; set; } = 1;
}

/// <summary>A write whose clusters are being allocated or filled; its entries are published on commit.</summary>
internal sealed class PendingPlan(IActorRef replyTo, ClusterWrite[] clusters)
{
    public IActorRef ReplyTo { get; } = replyTo;
    public ClusterWrite[] Clusters { get; } = clusters;
    /// <summary>(index into Clusters, L2 index) of clusters that need a new host cluster.</summary>
    public List<(int Slot, int L2Index)> NeedHost { get; } = [];
    /// <summary>(L2 index, whether the host was newly allocated) of every cluster this plan publishes.</summary>
    public List<(int L2Index, int Slot, bool NewHost)> Publish { get; } = [];
    /// <summary>Host clusters whose reference the published entries replace.</summary>
    public List<long> Replaced { get; } = [];
    public bool HostsAssigned { get; set; }
}
