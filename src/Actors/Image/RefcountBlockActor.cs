using Akka.Actor;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>One refcount block's bytes, kept by the supervisor so a restarted actor resumes them.</summary>
internal sealed class RefcountBlockState(long tableIndex, long hostOffset, byte[] bytes, bool dirty)
{
    public long TableIndex { get; } = tableIndex;
    public long HostOffset { get; } = hostOffset;
    public byte[] Bytes { get; } = bytes;
    public bool Dirty { get; set; } = dirty;
}

/// <summary>
/// Owns one refcount block and serialises its changes. It never allocates: the supervisor decides
/// which clusters are taken and creates blocks; this actor counts. Increments arrive as clusters
/// are handed out; decrements only in a flush, after the entries that pointed to the clusters are
/// durable. Its snapshot must be written before any L2/L1 entry that relies on its increments.
/// </summary>
internal sealed class RefcountBlockActor : ReceiveActor
{
    private readonly RefcountBlockState state;
    private readonly ClusterLayout layout;

    public static Props Props(RefcountBlockState state, ClusterLayout layout)
        => Akka.Actor.Props.Create(() => new RefcountBlockActor(state, layout));

    public RefcountBlockActor(RefcountBlockState state, ClusterLayout layout)
    {
        this.state = state;
        this.layout = layout;
        Receive<IncrementRefcounts>(m => Adjust(m.Clusters, +1, null));
        Receive<ApplyDecrements>(m =>
        {
            var freed = new List<long>();
            Adjust(m.Clusters, -1, freed);
            Sender.Tell(new DecrementsApplied(m.FlushId, [.. freed]));
        });
        Receive<CollectRefcounts>(m =>
        {
            byte[]? copy = state.Dirty ? (byte[])state.Bytes.Clone() : null;
            state.Dirty = false;
            Sender.Tell(new RefcountSnapshot(m.FlushId, state.TableIndex, state.HostOffset, copy));
        });
    }

    private void Adjust(long[] clusters, int delta, List<long>? freed)
    {
        ulong max = RefcountBlock.MaxValue(layout.RefcountOrder);
        foreach (long c in clusters)
        {
            int index = layout.RefcountBlockIndex(c);
            ulong value = RefcountBlock.Get(state.Bytes, index, layout.RefcountOrder);
            ulong next;
            if (delta > 0)
            {
                if (value == max) throw new InvalidOperationException($"refcount of cluster {c} would exceed {max}");
                next = value + 1;
            }
            else
            {
                // A count already 0 means the image's counts were wrong; never wrap around or free twice.
                if (value == 0) continue;
                next = value - 1;
                if (next == 0) freed!.Add(c);
            }
            RefcountBlock.Set(state.Bytes, index, layout.RefcountOrder, next);
        }
        state.Dirty = true;
    }
}
