using Akka.Actor;
using Akka.Event;
using QcowActors.Actors.Io;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// Owns one refcount block and serialises its changes. It never allocates: the supervisor decides
/// which clusters are taken and creates blocks; this actor counts. Increments arrive as clusters
/// are handed out; decrements only in a flush, after the entries that pointed to the clusters are
/// durable. A flush writes the block straight from its buffer while this actor holds changes
/// (frozen), before any L2/L1 entry that relies on its increments. A block not in memory is read
/// first; what arrives meanwhile waits, so no count is lost.
/// </summary>
internal sealed class RefcountBlockActor : UntypedActor, IWithStash, IWithTimers
{
    private static readonly TimeSpan ReloadDelay = TimeSpan.FromSeconds(1);
    private readonly RefcountBlockState _state;
    private readonly ClusterLayout _layout;
    private readonly IImageFile _file;
    private readonly MetadataBudget _budget;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public RefcountBlockActor(RefcountBlockState state, ClusterLayout layout, IImageFile file, MetadataBudget budget)
    {
        _state = state;
        _layout = layout;
        _file = file;
        _budget = budget;
    }

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(RefcountBlockState state, ClusterLayout layout, IImageFile file, MetadataBudget budget)
        => Akka.Actor.Props.Create(() => new RefcountBlockActor(state, layout, file, budget));

    private sealed record Reload;

    private CacheKey Key => new(CacheKind.RefcountBlock, _state.TableIndex);

    protected override void PreStart()
    {
        if (_state.Bytes is not null) return;
        Become(Loading);
        Load();
    }

    private void Load()
    {
        var bytes = _budget.Pool.Rent(_layout.ClusterSize, zeroed: false);
        _file.ReadAsync(bytes, _state.HostOffset, CancellationToken.None).AsTask()
            .PipeTo(Self, success: () => bytes, failure: e =>
            {
                _budget.Recycle(bytes);
                return new Status.Failure(e);
            });
    }

    private void Loading(object message)
    {
        switch (message)
        {
            case byte[] bytes:
                _state.Bytes = bytes;
                Become(OnReceive);
                Stash.UnstashAll();
                break;
            case Status.Failure f:
                // Counts waiting here must not be dropped: keep them and read again. A flush waits meanwhile.
                _log.Warning("Reading refcount block {0} failed ({1}); trying again in {2}", _state.TableIndex, f.Cause.Message, ReloadDelay);
                Timers.StartSingleTimer("reload", new Reload(), ReloadDelay);
                break;
            case Reload:
                Load();
                break;
            default:
                Stash.Stash();
                break;
        }
    }

    protected override void OnReceive(object message)
    {
        if (_state.IsFrozen && message is IncrementRefcounts or ApplyDecrements)
        {
            Stash.Stash(); // the flush is writing the buffer; counts wait for Thaw
            return;
        }
        switch (message)
        {
            case IncrementRefcounts m:
                Increment(m);
                break;
            case ApplyDecrements m:
                Sender.Tell(new DecrementsApplied(m.FlushId, _state.TableIndex, Decrement(m.Clusters)));
                break;
            case Freeze f:
                if (!_state.Dirty)
                {
                    Sender.Tell(new Frozen(f.FlushId, Key, _state.HostOffset, null, []));
                    break;
                }
                _state.IsFrozen = true;
                Sender.Tell(new Frozen(f.FlushId, Key, _state.HostOffset, _state.Bytes!, _state.TakeDirty()));
                break;
            case Thaw t:
                _state.IsFrozen = false;
                if (!t.Written) _state.MarkAllDirty();
                Stash.UnstashAll();
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    /// <summary>
    /// New references. A cluster at or past FreshFrom lay past the end of the file when it was
    /// opened and is handed out for the first time: whatever count it has is a leak left by a
    /// crash, so it is set to 1 rather than incremented.
    /// </summary>
    private void Increment(IncrementRefcounts m)
    {
        byte[] bytes = _state.Bytes!;
        int order = _layout.RefcountOrder;
        ulong max = RefcountBlock.MaxValue(order);
        foreach (long c in m.Clusters)
        {
            int index = _layout.RefcountBlockIndex(c);
            ulong value = c >= m.FreshFrom ? 0 : RefcountBlock.Get(bytes, index, order);
            if (value == max) throw new InvalidOperationException($"refcount of cluster {c} would exceed {max}");
            RefcountBlock.Set(bytes, index, order, value + 1);
            MarkEntryDirty(index);
        }
    }

    /// <summary>Returns the clusters whose count reached 0.</summary>
    private long[] Decrement(long[] clusters)
    {
        byte[] bytes = _state.Bytes!;
        int order = _layout.RefcountOrder;
        var freed = new List<long>();
        foreach (long c in clusters)
        {
            int index = _layout.RefcountBlockIndex(c);
            ulong value = RefcountBlock.Get(bytes, index, order);
            // A count already 0 means the image's counts were wrong; never wrap around or free twice.
            if (value == 0) continue;
            RefcountBlock.Set(bytes, index, order, value - 1);
            if (value == 1) freed.Add(c);
            MarkEntryDirty(index);
        }
        return [.. freed];
    }

    private void MarkEntryDirty(int index)
    {
        int bit = index << _layout.RefcountOrder;
        _state.MarkDirty(bit >> 3, (bit >> 3) + Math.Max(1, _layout.RefcountBits >> 3));
    }
}
