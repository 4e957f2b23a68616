using Akka.Actor;
using Akka.Event;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// One open image. Owns the header, the L1 table, the refcount table and the cluster allocator,
/// and orders flushes; its children own L2 tables and refcount blocks. It never awaits I/O in its
/// mailbox: open and flush run as tasks whose results come back as messages.
/// </summary>
internal sealed partial class ImageSupervisor : UntypedActor, IWithStash
{
    private readonly string _name;
    private readonly string _path;
    private readonly string _markerPath;
    private readonly IImageFileSystem _fs;
    private readonly TimeSpan _passivateAfter;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IoEpochGate _gate = new();

    private QcowHeader _header = null!;
    private ClusterLayout _layout = null!;
    private IImageFile _file = null!;
    private ulong[] _l1 = [];
    private readonly HashSet<long> _l1Dirty = [];
    private readonly Dictionary<long, L2TableState> _l2States = [];
    private readonly Dictionary<long, IActorRef> _l2Actors = [];
    private ImageRefusal? _dataRefusal;
    private ImageRefusal? _writeRefusal;
    private IActorRef? _closeRequester;

    public ImageSupervisor(string name, string path, IImageFileSystem fs, TimeSpan passivateAfter)
    {
        _name = name;
        _path = path;
        _markerPath = MarkerPathFor(path);
        _fs = fs;
        _passivateAfter = passivateAfter;
    }

    public IStash Stash { get; set; } = null!;

    public static Props Props(string name, string path, IImageFileSystem fs, TimeSpan passivateAfter)
        => Akka.Actor.Props.Create(() => new ImageSupervisor(name, path, fs, passivateAfter));

    /// <summary>Exists while the image may have unflushed metadata on disk; left behind = unclean close.</summary>
    public static string MarkerPathFor(string path)
        => Path.Combine(Path.GetDirectoryName(path)!, "." + Path.GetFileName(path) + ".open");

    protected override SupervisorStrategy SupervisorStrategy()
        // Children keep their tables in state objects we hold, so a restart loses nothing acknowledged.
        => new OneForOneStrategy(10, TimeSpan.FromMinutes(1), _ => Directive.Restart);

    protected override void PreStart()
    {
        Become(Opening);
        ImageOpener.OpenAsync(_path, _markerPath, _fs, CancellationToken.None).PipeTo(Self);
    }

    private void Opening(object message)
    {
        switch (message)
        {
            case OpenedImage opened:
                Adopt(opened);
                Become(OnReceive);
                Context.SetReceiveTimeout(_passivateAfter);
                Stash.UnstashAll();
                break;
            case Status.Failure f:
                var error = OpenError(f.Cause);
                _log.Warning("Image {0} cannot be opened: {1}", _name, error.Message);
                Become(m => FailAll(m, error));
                Stash.UnstashAll();
                Context.Parent.Tell(new Store.Passivate(_name));
                break;
            default:
                Stash.Stash();
                break;
        }
    }

    private void FailAll(object message, ImageException error)
    {
        if (message is CloseImage) Context.Stop(Self);
        else if (message is IImageMessage) Sender.Tell(new Status.Failure(error));
    }

    private ImageException OpenError(Exception cause) => cause switch
    {
        QcowFormatException { Problem: QcowProblem.Unsupported } q => new ImageException(ImageError.Unsupported, $"image '{_name}': {q.Message}", q.Feature ?? q.Field, q),
        QcowFormatException q => new ImageException(ImageError.Unsupported, $"image '{_name}' is not a usable qcow2 image: {q.Message}", "invalid image", q),
        FileNotFoundException => new ImageException(ImageError.NotFound, $"image '{_name}' does not exist"),
        ImageException i => i,
        _ => new ImageException(ImageError.Unsupported, $"image '{_name}' cannot be opened: {cause.Message}", "unreadable image", cause),
    };

    private void Adopt(OpenedImage opened)
    {
        _file = opened.File;
        _header = opened.Header;
        _layout = _header.Layout;
        _l1 = opened.L1;
        _refTable = opened.RefcountTable;
        foreach (var (t, bytes) in opened.RefcountBlocks)
            _rcStates[t] = new RefcountBlockState(t, (long)(_refTable[t] & ~511UL), bytes, dirty: false);
        _allocator = new ClusterAllocator(opened.EndCluster, opened.FreeClusters, _gate);
        _dataRefusal = opened.DataRefusal;
        _writeRefusal = opened.WriteRefusal;
        if (opened.Repaired is not null)
            _log.Info("Image {0} was not closed cleanly or was marked dirty: {1}", _name, opened.Repaired);
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case GetImageInfo: Sender.Tell(Info()); break;
            case AttachImage: Sender.Tell(Handle()); break;
            case MapRange m: RouteRead(m, m.Offset); break;
            case GetL2Extents e: RouteExtents(e); break;
            case PrepareWrite w: RouteWrite(w, w.Offset); break;
            case ZeroClusters z: RouteZero(z); break;
            case CommitWrite c: ForwardToExisting(c, c.L1Index); break;
            case AbortWrite a: ForwardToExisting(a, a.L1Index); break;
            case CrashL2Table c: ForwardToExisting(c, c.L1Index); break;
            case AllocateForPlan a: AllocateForPlan(a); break;
            case ReleaseClusters r: _pendingDecrements.AddRange(r.HostClusters); break;
            case FlushImage: RequestFlush(Sender); break;
            case CloseImage: BeginClose(Sender); break;
            case ReceiveTimeout:
                if (_gate.IsIdle && _flush is null) Context.Parent.Tell(new Store.Passivate(_name));
                break;
            default:
                if (!OnFlushMessage(message) && !OnCloseMessage(message)) Unhandled(message);
                break;
        }
    }

    private ImageInfo Info() => new(_name, "qcow2", (int)_header.Version, _header.Size, _file.Length,
        _layout.ClusterSize, _layout.RefcountBits, _header.BackingFile,
        (_header.IncompatibleFeatures & FeatureBits.IncompatibleDirty) != 0);

    private ImageHandle Handle() => new(_name, _header.Size, (int)_header.Version, _layout, _file, _gate, _dataRefusal, _writeRefusal);

    private bool Refuse(ImageRefusal? refusal)
    {
        if (refusal is null) return false;
        Sender.Tell(new Status.Failure(new ImageException(ImageError.Unsupported, $"image '{_name}': {refusal.Detail}", refusal.Feature)));
        return true;
    }

    private void RouteRead(object message, long offset)
    {
        if (Refuse(_dataRefusal)) return;
        long i = _layout.L1Index(offset);
        var actor = L2ForRead(i);
        if (actor is null)
        {
            var m = (MapRange)message;
            Sender.Tell(new RangeMapping([new MappedRun(m.Offset, m.Length, -1)]));
            return;
        }
        actor.Forward(message);
    }

    private void RouteExtents(GetL2Extents e)
    {
        if (Refuse(_dataRefusal)) return;
        var actor = L2ForRead(e.L1Index);
        if (actor is null)
            Sender.Tell(new ExtentRuns([new ExtentRun(_layout.L2TableStart(e.L1Index), _layout.L2Coverage, ExtentKind.Zero)]));
        else
            actor.Forward(e);
    }

    private void RouteWrite(object message, long offset)
    {
        if (Refuse(_dataRefusal) || Refuse(_writeRefusal)) return;
        try
        {
            L2ForWrite(_layout.L1Index(offset)).Forward(message);
        }
        catch (ImageException e)
        {
            Sender.Tell(new Status.Failure(e));
        }
    }

    private void RouteZero(ZeroClusters z)
    {
        if (Refuse(_dataRefusal) || Refuse(_writeRefusal)) return;
        // Without a backing file an unallocated table already reads as zeros.
        if (L1Entry.From(_l1[_layout.L1Index(z.Offset)]).IsUnallocated)
        {
            Sender.Tell(new ZeroDone());
            return;
        }
        RouteWrite(z, z.Offset);
    }

    private void ForwardToExisting(object message, long l1Index)
    {
        if (_l2Actors.TryGetValue(l1Index, out var actor)) actor.Forward(message);
        else Sender.Tell(new Status.Failure(new InvalidOperationException($"no L2 table {l1Index} is open")));
    }

    private IActorRef? L2ForRead(long i)
    {
        if (_l2Actors.TryGetValue(i, out var actor)) return actor;
        var e = L1Entry.From(_l1[i]);
        if (e.IsUnallocated) return null;
        return StartL2(new L2TableState(i, e.L2Offset, null));
    }

    /// <summary>The L2 actor for a write: allocates a table for an empty slot, copies a table shared with a snapshot.</summary>
    private IActorRef L2ForWrite(long i)
    {
        var e = L1Entry.From(_l1[i]);
        if (e.IsUnallocated)
        {
            long host = AllocateCounted(1)[0] << _layout.ClusterBits;
            _l1[i] = L1Entry.Create(host, copied: true).ToRaw();
            _l1Dirty.Add(i);
            return StartL2(new L2TableState(i, host, new ulong[_layout.L2Entries]));
        }
        var actor = L2ForRead(i)!;
        if (!e.Copied)
        {
            // The table is shared (refcount > 1): the active image gets its own copy; the old one loses a reference once L1 no longer points to it durably.
            long host = AllocateCounted(1)[0] << _layout.ClusterBits;
            _pendingDecrements.Add(e.L2Offset >> _layout.ClusterBits);
            _l1[i] = L1Entry.Create(host, copied: true).ToRaw();
            _l1Dirty.Add(i);
            actor.Tell(new RelocateTable(host));
        }
        return actor;
    }

    private IActorRef StartL2(L2TableState state)
    {
        _l2States[state.L1Index] = state;
        var actor = Context.ActorOf(L2TableActor.Props(state, _layout, _file, _header.Version >= 3), $"l2-{state.L1Index}");
        _l2Actors[state.L1Index] = actor;
        return actor;
    }
}
