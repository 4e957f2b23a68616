using Akka.Actor;
using Akka.Event;
using QcowActors.Actors.Backing;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// One open image. Owns the header and the L1 table and routes every image message; its plain
/// parts do the rest — <see cref="MetadataCache"/> and <see cref="ImageTables"/> (what is in memory,
/// within budget), <see cref="CountedAllocation"/> (clusters, counted, fenced), <see cref="FlushCoordinator"/>
/// (durability order) — and its children own L2 tables and refcount blocks. It never awaits I/O
/// in its mailbox: open, flush and close run as tasks whose results come back as messages. A
/// request that needs memory the budget cannot give now waits here, in order, until a write-back
/// or another image makes room, or answers 503 after <c>Storage:MetadataCacheWaitLimit</c>.
/// </summary>
internal sealed partial class ImageSupervisor : UntypedActor, IWithStash, IWithTimers
{
    private readonly string _name;
    private readonly string _path;
    private readonly string _markerPath;
    private readonly IImageFileSystem _fs;
    private readonly MetadataBudget _budget;
    private readonly TimeSpan _waitLimit;
    private readonly BackingChains _chains;
    /// <summary>The chain beneath this overlay while it is open (released once, at close or stop).</summary>
    private BackingDisk? _backing;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IoEpochGate _gate = new();

    private QcowHeader _header = null!;
    private ClusterLayout _layout = null!;
    private IImageFile _file = null!;
    private ulong[] _l1 = [];
    private readonly HashSet<long> _l1Dirty = [];
    private MetadataCache _cache = null!;
    private ImageTables _tables = null!;
    private ClusterAllocator _allocator = null!;
    private RefcountTable _refcountTable = null!;
    private CountedAllocation _counting = null!;
    private FlushCoordinator _flush = null!;
    private MetadataClusters _fences = null!;
    private ImageHandle _handle = null!;
    private ImageRefusal? _dataRefusal;
    /// <summary>Metadata found misplaced or with a count of 0 at open: the first write marks the image corrupt.</summary>
    private string? _violation;
    /// <summary>Tables being read whose writes wait: until loaded it is unknown whether they are compact, and a shared one must be loaded to be copied.</summary>
    private readonly Dictionary<long, List<(object Message, IActorRef Sender)>> _loading = [];

    public ImageSupervisor(string name, string path, IImageFileSystem fs, MetadataBudget budget, TimeSpan waitLimit, BackingChains chains)
    {
        _chains = chains;
        _name = name;
        _path = path;
        _markerPath = MarkerPathFor(path);
        _fs = fs;
        _budget = budget;
        _waitLimit = waitLimit;
        _member = new CacheMember(Self);
    }

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string name, string path, IImageFileSystem fs, MetadataBudget budget, TimeSpan waitLimit, BackingChains chains)
        => Akka.Actor.Props.Create(() => new ImageSupervisor(name, path, fs, budget, waitLimit, chains));

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
        ImageOpener.OpenAsync(_path, _markerPath, _fs, _budget, _waitLimit, CancellationToken.None, _chains).PipeTo(Self);
    }

    private void Opening(object message)
    {
        switch (message)
        {
            case OpenedImage opened:
                Adopt(opened);
                Become(OnReceive);
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
        NotAnImageFileException n => new ImageException(ImageError.Unsupported, $"image '{_name}': its file {n.Why}", "not a regular file", n),
        ImageInUseException => new ImageException(ImageError.Conflict,
            $"image '{_name}': {cause.Message}; the server serves it again once that program closes it (qemu-img with -U reads it meanwhile)", "in use", cause),
        ImageLockedException => new ImageException(ImageError.Unavailable,
            $"image '{_name}' is held open by another process (its lock is taken: another node still has it open, or a tool that locks it); try again", null, cause),
        ImageException i => i,
        // An I/O failure may pass: 503 says "try again"; the OS message (paths) stays in the log.
        _ => new ImageException(ImageError.Unavailable, $"image '{_name}' cannot be opened right now (I/O error); try again", null, cause),
    };

    private void Adopt(OpenedImage opened)
    {
        _file = opened.File;
        _backing = opened.Backing;
        _header = opened.Header;
        _layout = _header.Layout;
        _l1 = opened.L1;
        _fences = opened.Fences;
        var directory = new L2Directory(_l1, _layout, _backing is not null);
        _cache = new MetadataCache(_budget, _layout.ClusterSize, opened.ReservedBytes);
        _budget.Join(_member);
        _tables = new ImageTables(Context, _name, _layout, _file, _header.Version >= 3, directory, _fences, _cache);
        _refcountTable = new RefcountTable(opened.RefcountTable, _header.RefcountTableOffset, _layout.ClusterSize);
        // Reserved by the opener (part of ReservedBytes): entries now, clean.
        foreach (var (t, bytes) in opened.RefcountBlocks)
            _tables.AddBlock(new RefcountBlockState(t, _refcountTable.BlockOffset(t), _layout.ClusterSize, bytes));
        _allocator = new ClusterAllocator(_layout, opened.EndCluster, opened.Free, _fences, _gate);
        _flush = new FlushCoordinator(new FlushHost(this));
        _counting = new CountedAllocation(_layout, _allocator, _refcountTable, _tables, _cache, _fences, _flush, _header);
        _dataRefusal = opened.DataRefusal;
        _violation = opened.Violation;
        _bitmaps = new Bitmaps.BitmapKeeper(_layout, _header.Size, opened.Bitmaps, opened.BitmapDirectory);
        _handle = new ImageHandle(_name, _header, _file, _gate, _dataRefusal, opened.WriteRefusal, directory, _fences, Self, _backing, _bitmaps.Tracking);
        if (opened.Repaired is not null)
            _log.Info("Image {0} was not closed cleanly or was marked dirty: {1}", _name, opened.Repaired);
        if (_violation is not null)
            _log.Warning("Image {0} has corrupt metadata ({1}); the first write marks it corrupt", _name, _violation);
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case AttachImage: Sender.Tell(_handle); break;
            case MapRange m: RouteRead(m, _layout.L1Index(m.Offset)); break;
            case GetL2Extents e: RouteRead(e, e.L1Index); break;
            case PrepareWrite w: RouteWrite(w, _layout.L1Index(w.Offset)); break;
            case ZeroClusters z: RouteWrite(z, _layout.L1Index(z.Offset)); break;
            case CommitWrite c: ForwardToTable(c, c.L1Index); break;
            case AbortWrite a: ForwardToTable(a, a.L1Index); break;
            case CrashL2Table c: ForwardToTable(c, c.L1Index); break;
            case AllocateForPlan a: AllocateForPlan(a); break;
            case ReleaseClusters r: _flush.AddDecrements(r.HostClusters); break;
            case FlushImage when _recovering is not null: Sender.Tell(new Status.Failure(_recovering)); break;
            case FlushImage: _flush.Request(Sender); break;
            case ReportCorruption r: MarkCorrupt(r.Detail); break;
            case CloseImage: BeginClose(); break;
            default:
                if (!OnTableMessage(message) && !OnFlushMessage(message) && !OnRoomMessage(message) && !OnCloseMessage(message)
                    && !OnBitmapMessage(message))
                    Unhandled(message);
                break;
        }
    }

    private bool Refuse(ImageRefusal? refusal)
    {
        if (refusal is null) return false;
        Sender.Tell(new Status.Failure(ImageService.RefusalError(_name, refusal)));
        return true;
    }

    /// <summary>Writes are refused once the image is corrupt (or read-only); the first write into an image with corrupt metadata marks it.</summary>
    private bool RefuseWrite()
    {
        if (_handle.WriteRefusal is null && _violation is not null) MarkCorrupt(_violation);
        return Refuse(_handle.WriteRefusal);
    }

    private void RouteRead(IImageMessage message, long i)
    {
        if (Refuse(_dataRefusal) || _tables.Hold(i, message, Sender)) return;
        if (L1Entry.From(_l1[i]).IsUnallocated)
        {
            Sender.Tell(message is MapRange m
                ? new RangeMapping([new MappedRun(m.Offset, m.Length, MappedRun.UnallocatedHost)])
                : new ExtentRuns([new ExtentRun(_layout.L2TableStart(i), _layout.L2Coverage, ExtentKind.Unallocated)]));
            return;
        }
        if (!_tables.TryGetTable(i, out _, out _) && !TryLoadTable(i))
        {
            WaitForRoom(message);
            return;
        }
        _tables.Send(i, message, Sender);
    }

    /// <summary>Writes and zeroing: the table must exist (created for an empty slot), be loaded, be this image's own (copied if shared) and dense.</summary>
    private void RouteWrite(IImageMessage message, long i)
    {
        if (Refuse(_dataRefusal) || RefuseWrite() || _tables.Hold(i, message, Sender)) return;
        var e = L1Entry.From(_l1[i]);
        try
        {
            if (e.IsUnallocated)
            {
                // Without a backing file an unallocated table already reads as zeros (an overlay's reads its backing's bytes).
                if (message is ZeroClusters && _handle.BackingDisk is null)
                {
                    Sender.Tell(new ZeroDone());
                    return;
                }
                if (!TryCreateTable(i))
                {
                    WaitForRoom(message);
                    return;
                }
            }
            else if (!_tables.TryGetTable(i, out _, out _) && !TryLoadTable(i))
            {
                WaitForRoom(message);
                return;
            }
            if (_loading.TryGetValue(i, out var waiting))
            {
                waiting.Add((message, Sender));
                return;
            }
            _tables.TryGetTable(i, out var entry, out _);
            // Dense before copied: a copy is written whole by the next flush, from a dense buffer.
            if (entry.Bytes < _layout.ClusterSize && !TryDensify(i, entry))
            {
                WaitForRoom(message);
                return;
            }
            if (!L1Entry.From(_l1[i]).Copied && !TryRelocate(i))
            {
                WaitForRoom(message);
                return;
            }
        }
        catch (FenceViolationException v)
        {
            MarkCorrupt(v.Message);
            Sender.Tell(new Status.Failure(Corruption.WriteRefused(_name, v.Message)));
            return;
        }
        catch (ImageException x)
        {
            Sender.Tell(new Status.Failure(x));
            return;
        }
        _tables.Send(i, message, Sender);
    }

    private void ForwardToTable(IImageMessage message, long i)
    {
        if (_tables.Hold(i, message, Sender)) return;
        if (_tables.TryGetTable(i, out _, out _)) _tables.Send(i, message, Sender);
        else Sender.Tell(new Status.Failure(new InvalidOperationException($"no L2 table {i} is open")));
    }

    private void AllocateForPlan(AllocateForPlan a)
    {
        if (_handle.WriteRefusal is { } refusal)
        {
            Sender.Tell(new AllocationFailed(a.PlanId, new ImageException(ImageError.Unsupported, $"image '{_name}': {refusal.Detail}", refusal.Feature)));
            return;
        }
        try
        {
            if (TryTakeCounted(a.Count) is not { } taken)
            {
                WaitForRoom(a);
                return;
            }
            Sender.Tell(new ClustersAllocated(a.PlanId, taken.Clusters.Select(c => c << _layout.ClusterBits).ToArray(), taken.Fresh));
        }
        catch (FenceViolationException v)
        {
            MarkCorrupt(v.Message);
            Sender.Tell(new AllocationFailed(a.PlanId, Corruption.WriteRefused(_name, v.Message)));
        }
        catch (ImageException x)
        {
            Sender.Tell(new AllocationFailed(a.PlanId, x));
        }
    }
}
