using Akka.Actor;
using Akka.Event;
using QcowActors.Actors.Io;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>One refcount block's bytes, kept by the supervisor so a restarted actor resumes them.</summary>
internal sealed class RefcountBlockState(long tableIndex, long hostOffset, byte[]? bytes, bool dirty)
{
    public long TableIndex { get; } = tableIndex;
    public long HostOffset { get; } = hostOffset;
    /// <summary>Null until read from the file (a block dropped from the cache and needed again).</summary>
    public byte[]? Bytes { get; set; } = bytes;
    public bool Dirty { get; set; } = dirty;
}

/// <summary>
/// Owns one refcount block and serialises its changes. It never allocates: the supervisor decides
/// which clusters are taken and creates blocks; this actor counts. Increments arrive as clusters
/// are handed out; decrements only in a flush, after the entries that pointed to the clusters are
/// durable. Its snapshot must be written before any L2/L1 entry that relies on its increments.
/// A block not in memory is read first; what arrives meanwhile waits, so no count is lost.
/// </summary>
internal sealed class RefcountBlockActor : UntypedActor, IWithStash, IWithTimers
{
    private static readonly TimeSpan ReloadDelay = TimeSpan.FromSeconds(1);
    private readonly RefcountBlockState _state;
    private readonly ClusterLayout _layout;
    private readonly IImageFile _file;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public RefcountBlockActor(RefcountBlockState state, ClusterLayout layout, IImageFile file)
    {
        _state = state;
        _layout = layout;
        _file = file;
    }

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(RefcountBlockState state, ClusterLayout layout, IImageFile file)
        => Akka.Actor.Props.Create(() => new RefcountBlockActor(state, layout, file));

    private sealed record Reload;

    protected override void PreStart()
    {
        if (_state.Bytes is not null) return;
        Become(Loading);
        Load();
    }

    private void Load()
    {
        var bytes = new byte[_layout.ClusterSize];
        _file.ReadAsync(bytes, _state.HostOffset, CancellationToken.None).AsTask()
            .PipeTo(Self, success: () => bytes, failure: e => new Status.Failure(e));
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
        switch (message)
        {
            case IncrementRefcounts m:
                Adjust(m.Clusters, +1, null);
                break;
            case ApplyDecrements m:
                var freed = new List<long>();
                Adjust(m.Clusters, -1, freed);
                Sender.Tell(new DecrementsApplied(m.FlushId, [.. freed]));
                break;
            case CollectRefcounts m:
                byte[]? copy = _state.Dirty ? (byte[])_state.Bytes!.Clone() : null;
                _state.Dirty = false;
                Sender.Tell(new RefcountSnapshot(m.FlushId, _state.TableIndex, _state.HostOffset, copy));
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private void Adjust(long[] clusters, int delta, List<long>? freed)
    {
        byte[] bytes = _state.Bytes!;
        ulong max = RefcountBlock.MaxValue(_layout.RefcountOrder);
        foreach (long c in clusters)
        {
            int index = _layout.RefcountBlockIndex(c);
            ulong value = RefcountBlock.Get(bytes, index, _layout.RefcountOrder);
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
            RefcountBlock.Set(bytes, index, _layout.RefcountOrder, next);
        }
        _state.Dirty = true;
    }
}
