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
    private L2Directory _directory = null!;
    private readonly HashSet<long> _l1Dirty = [];
    private readonly Dictionary<long, L2TableState> _l2States = [];
    private readonly Dictionary<long, IActorRef> _l2Actors = [];
    private ImageRefusal? _dataRefusal;
    private ImageRefusal? _writeRefusal;

    private readonly CacheBudget _cacheBudget;

    public ImageSupervisor(string name, string path, IImageFileSystem fs, TimeSpan passivateAfter, CacheBudget cacheBudget, CacheBudget refcountBudget)
    {
        _cacheBudget = cacheBudget;
        _rcBudget = refcountBudget;
        _name = name;
        _path = path;
        _markerPath = MarkerPathFor(path);
        _fs = fs;
        _passivateAfter = passivateAfter;
    }

    public IStash Stash { get; set; } = null!;

    public static Props Props(string name, string path, IImageFileSystem fs, TimeSpan passivateAfter, CacheBudget cacheBudget, CacheBudget refcountBudget)
        => Akka.Actor.Props.Create(() => new ImageSupervisor(name, path, fs, passivateAfter, cacheBudget, refcountBudget));

    /// <summary>Exists while the image may have unflushed metadata on disk; left behind = unclean close.</summary>
    public static string MarkerPathFor(string path)
        => Path.Combine(Path.GetDirectoryName(path)!, "." + Path.GetFileName(path) + ".open");

    protected override SupervisorStrategy SupervisorStrategy()
        // Children keep their tables in state objects we hold, so a restart loses nothing acknowledged.
        // Unlimited: a child that stopped for good would strand its requests and a flush waiting on it.
        => new OneForOneStrategy(-1, -1, _ => Directive.Restart);

    protected override void PreStart()
    {
        Become(Opening);
        ImageOpener.OpenAsync(_path, _markerPath, _fs, _rcBudget.PerImageBytes, CancellationToken.None).PipeTo(Self);
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
        if (message is CloseImage) HandOver();
        else if (message is IImageMessage) Sender.Tell(new Status.Failure(error));
    }

    private ImageException OpenError(Exception cause) => cause switch
    {
        QcowFormatException { Problem: QcowProblem.Unsupported } q => new ImageException(ImageError.Unsupported, $"image '{_name}': {q.Message}", q.Feature ?? q.Field, q),
        QcowFormatException q => new ImageException(ImageError.Unsupported, $"image '{_name}' is not a usable qcow2 image: {q.Message}", "invalid image", q),
        FileNotFoundException => new ImageException(ImageError.NotFound, $"image '{_name}' does not exist"),
        Io.ImageLockedException => new ImageException(ImageError.Unavailable,
            $"image '{_name}' is held open by another process (its lock is taken: another node still has it open, or a tool that locks it); try again", null, cause),
        ImageException i => i,
        // An I/O failure may pass: 503 says "try again"; the OS message (paths) stays in the log.
        _ => new ImageException(ImageError.Unavailable, $"image '{_name}' cannot be opened right now (I/O error); try again", null, cause),
    };

    private void Adopt(OpenedImage opened)
    {
        _file = opened.File;
        _header = opened.Header;
        _layout = _header.Layout;
        _l1 = opened.L1;
        _directory = new L2Directory(_l1, _layout);
        _refTable = opened.RefcountTable;
        foreach (var (t, bytes) in opened.RefcountBlocks)
            AddRefcountState(new RefcountBlockState(t, (long)(_refTable[t] & ~511UL), bytes, dirty: false));
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
            case CloseImage: BeginClose(); break;
            case ReceiveTimeout:
                if (_gate.IsIdle && _flush is null) Context.Parent.Tell(new Store.Passivate(_name));
                break;
            default:
                if (!OnFlushMessage(message) && !OnCloseMessage(message) && !OnL2CacheMessage(message)) Unhandled(message);
                break;
        }
    }

    private ImageHandle Handle() => new(_name, _header.Size, (int)_header.Version, _layout, _file, _gate, _dataRefusal, _writeRefusal,
        _header.BackingFile, (_header.IncompatibleFeatures & FeatureBits.IncompatibleDirty) != 0, _directory, Self);

    private bool Refuse(ImageRefusal? refusal)
    {
        if (refusal is null) return false;
        Sender.Tell(new Status.Failure(new ImageException(ImageError.Unsupported, $"image '{_name}': {refusal.Detail}", refusal.Feature)));
        return true;
    }

    /// <summary>Requests for a table being stopped wait for the outcome, then are routed afresh.</summary>
    private bool HeldForStoppingTable(long i, object message)
    {
        if (!_l2Stopping.TryGetValue(i, out var waiting)) return false;
        waiting.Add((message, Sender));
        return true;
    }

    private void RouteRead(object message, long offset)
    {
        if (Refuse(_dataRefusal)) return;
        long i = _layout.L1Index(offset);
        if (HeldForStoppingTable(i, message)) return;
        if (!EnsureL2ForRead(i))
        {
            var m = (MapRange)message;
            Sender.Tell(new RangeMapping([new MappedRun(m.Offset, m.Length, -1)]));
            return;
        }
        SendToL2(i, message, Sender);
    }

    private void RouteExtents(GetL2Extents e)
    {
        if (Refuse(_dataRefusal) || HeldForStoppingTable(e.L1Index, e)) return;
        if (!EnsureL2ForRead(e.L1Index))
            Sender.Tell(new ExtentRuns([new ExtentRun(_layout.L2TableStart(e.L1Index), _layout.L2Coverage, ExtentKind.Zero)]));
        else
            SendToL2(e.L1Index, e, Sender);
    }

    private void RouteWrite(object message, long offset)
    {
        if (Refuse(_dataRefusal) || Refuse(_writeRefusal)) return;
        long i = _layout.L1Index(offset);
        if (HeldForStoppingTable(i, message) || HeldUntilLoaded(i, message)) return;
        try
        {
            EnsureL2ForWrite(i);
        }
        catch (ImageException e)
        {
            Sender.Tell(new Status.Failure(e));
            return;
        }
        SendToL2(i, message, Sender);
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
        if (_l2Actors.ContainsKey(l1Index)) SendToL2(l1Index, message, Sender);
        else Sender.Tell(new Status.Failure(new InvalidOperationException($"no L2 table {l1Index} is open")));
    }
}
