using Akka.Actor;
using Akka.Event;
using QcowActors.Actors.Image.Bitmaps;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// The supervisor's half of persistent bitmaps: requests about them, and the directory rewrites
/// (<see cref="BitmapStorePlan"/>) one at a time — at add and remove (the directory then lists
/// every bitmap <c>in_use</c>), and at close (their bits stored, <c>in_use</c> cleared), each made
/// durable by a flush that writes the header naming the new directory before it releases the old clusters.
/// </summary>
internal sealed partial class ImageSupervisor
{
    private BitmapKeeper _bitmaps = null!;
    /// <summary>The header's extensions changed: the next flush writes its whole cluster.</summary>
    private bool _headerAreaDirty;
    private BitmapStorePlan? _storing;
    private readonly Queue<(object Message, IActorRef Sender)> _bitmapQueue = new();

    private sealed record BitmapsWritten(BitmapStorePlan Plan, object? Waiter, Action? Undo);
    private sealed record BitmapsWriteFailed(BitmapStorePlan Plan, object? Waiter, Action? Undo, Exception Cause);
    private sealed record StoreAtClose;

    private BitmapInfo InfoOf(PersistentBitmap b)
        => new(b.Name, b.Granularity, b.Enabled, b.Consistent, b.Bits is { } bits ? Math.Min(bits.CountSet() * b.Granularity, _header.Size) : 0);

    private bool OnBitmapMessage(object message)
    {
        switch (message)
        {
            case ListBitmaps:
                Sender.Tell(new BitmapList([.. _bitmaps.All.Select(InfoOf)]));
                return true;
            case GetBitmapBits g:
                if (FindBitmap(g.Name) is { } found) Sender.Tell(new BitmapBits(found.Bits));
                return true;
            case ChangeBitmap c:
                Change(c);
                return true;
            case MarkBitmapsDirty:
                foreach (var b in _bitmaps.All) b.Bits?.SetAll();
                Sender.Tell(new BitmapList([.. _bitmaps.All.Select(InfoOf)]));
                return true;
            case AddBitmap or RemoveBitmap:
                if (RefuseWrite()) return true;
                // Never held back by a close: the request holds its gate entry, so the close waits for its answer.
                if (_storing is not null) _bitmapQueue.Enqueue((message, Sender));
                else if (message is AddBitmap a) Add(a);
                else Remove((RemoveBitmap)message);
                return true;
            case BitmapsWritten w:
                Committed(w);
                return true;
            case BitmapsWriteFailed f:
                StoreFailed(f);
                return true;
            default:
                return false;
        }
    }

    private PersistentBitmap? FindBitmap(string name)
    {
        if (_bitmaps.Find(name) is { } b) return b;
        Sender.Tell(new Status.Failure(new ImageException(ImageError.NotFound, $"image '{_name}' has no bitmap named '{name}'")));
        return null;
    }

    private ImageException Inconsistent(PersistentBitmap b) => BitmapKeeper.Inconsistent(_name, b.Name);

    private void Change(ChangeBitmap c)
    {
        if (FindBitmap(c.Name) is not { } b) return;
        if (!b.Consistent)
        {
            Sender.Tell(new Status.Failure(Inconsistent(b)));
            return;
        }
        if (RefuseWrite()) return;
        if (c.Clear) b.Bits!.ClearAll();
        if (c.Enabled is { } enabled) b.Enabled = enabled;
        _bitmaps.Changed();
        Sender.Tell(InfoOf(b));
    }

    private void Add(AddBitmap a)
    {
        if (_bitmaps.Find(a.Name) is not null)
        {
            Sender.Tell(new Status.Failure(new ImageException(ImageError.AlreadyExists, $"image '{_name}' already has a bitmap named '{a.Name}'")));
            return;
        }
        if (_bitmaps.All.Count >= BitmapLimits.MaxBitmaps)
        {
            Sender.Tell(new Status.Failure(new ImageException(ImageError.Conflict, $"image '{_name}' has {_bitmaps.All.Count} bitmaps, the most a qcow2 image may hold")));
            return;
        }
        long memory = _bitmaps.MemoryFor(a.GranularityBits);
        if (_cache.UsedBytes - _cache.CleanBytes - _cache.DirtyBytes + memory + 8L * _layout.ClusterSize > _budget.PerImageBytes)
        {
            // More than the image's budget can ever hold beside its tables: not worth waiting for.
            Sender.Tell(new Status.Failure(new ImageException(ImageError.Conflict,
                $"image '{_name}': a bitmap of granularity {1L << a.GranularityBits} needs {memory} bytes of memory, more than the per-image metadata "
                + $"budget (Storage:MetadataCacheBytesPerImage, {_budget.PerImageBytes} bytes) leaves beside the image's tables and other bitmaps; "
                + "use a coarser granularity", "metadata budget")));
            return;
        }
        if (!_cache.TryReserve(memory, ReserveFor.Request))
        {
            Sender.Tell(new Status.Failure(new ImageException(ImageError.Unavailable,
                $"image '{_name}': a bitmap of granularity {1L << a.GranularityBits} needs {memory} bytes of memory, which the metadata budget "
                + "(Storage:MetadataCacheBytesPerImage, Storage:MetadataCacheBytesTotal) cannot give now; use a coarser granularity, or try again")));
            return;
        }
        var b = _bitmaps.Add(a.Name, a.GranularityBits, a.Enabled);
        var requester = Sender;
        Store(_bitmaps.Plan(closing: false), requester, () =>
        {
            _bitmaps.All.Remove(b);
            _bitmaps.Changed();
            _cache.Release(memory);
        }, reply: InfoOf(b));
    }

    private void Remove(RemoveBitmap r)
    {
        if (FindBitmap(r.Name) is not { } b) return;
        var info = InfoOf(b);
        int index = _bitmaps.All.IndexOf(b);
        _bitmaps.All.Remove(b);
        _bitmaps.Changed();
        Store(_bitmaps.Plan(closing: false, removed: b), Sender, () =>
        {
            _bitmaps.All.Insert(index, b);
            _bitmaps.Changed();
        }, reply: info, released: b.MemoryBytes);
    }

    /// <summary>At close, after the gate drained: the bits reach the file (in_use cleared), then the final flush.</summary>
    private void StoreBitmapsAndClose()
    {
        if (_storing is not null)
        {
            _bitmapQueue.Enqueue((new StoreAtClose(), Self));
            return;
        }
        if (_bitmaps.NeedsStoreAtClose && _handle.WriteRefusal is null && !_corrupt && _violation is null)
            Store(_bitmaps.Plan(closing: true), new FinalFlush(), null, reply: null);
        else
            _flush.Request(new FinalFlush());
    }

    /// <summary>Takes the plan's clusters (counted, fenced), writes the structures as a task, and waits for <see cref="BitmapsWritten"/>.</summary>
    private void Store(BitmapStorePlan plan, object waiter, Action? undo, object? reply, long released = 0)
    {
        try
        {
            // Will the header cluster hold the new extension? Tried on the header, then put back.
            var saved = _header.Extensions.ToList();
            ulong autoclear = _header.AutoclearFeatures;
            SetBitmapsExtension(plan.Extension, dryRun: true);
            try { ImageOpener.HeaderCluster(_header); }
            finally
            {
                _header.Extensions.Clear();
                _header.Extensions.AddRange(saved);
                _header.AutoclearFeatures = autoclear;
            }
        }
        catch (QcowFormatException e)
        {
            Failed(waiter, undo, new ImageException(ImageError.Conflict, $"image '{_name}': its header cluster has no room for the bitmaps extension ({e.Message})"));
            return;
        }
        long[] clusters = [];
        if (plan.ClustersNeeded > 0)
        {
            Allocation? taken;
            try
            {
                taken = plan.Contiguous ? _counting.TryTakeContiguous(plan.ClustersNeeded, out _) : TryTakeCounted(plan.ClustersNeeded);
            }
            catch (ImageException x)
            {
                Failed(waiter, undo, x);
                return;
            }
            catch (FenceViolationException v)
            {
                MarkCorrupt(v.Message);
                Failed(waiter, undo, Corruption.WriteRefused(_name, v.Message));
                return;
            }
            if (taken is null)
            {
                Failed(waiter, undo, new ImageException(ImageError.Unavailable,
                    $"image '{_name}': the metadata cache has no room to count the bitmaps' clusters now; try again"));
                return;
            }
            clusters = taken.Value.Clusters;
        }
        plan.Assign(clusters);
        foreach (var (cluster, kind) in plan.Assigned)
        {
            if (_fences.Add(cluster, kind) is { } held)
            {
                MarkCorrupt($"cluster {cluster}, allocated for {MetadataClusters.Describe(kind)}, already holds {MetadataClusters.Describe(held)}");
                Failed(waiter, undo, Corruption.WriteRefused(_name, "a cluster allocated for a bitmap holds metadata"));
                return;
            }
        }
        _storing = plan;
        object? afterWrite = reply is null ? waiter : new ReplyAfterFlush((IActorRef)waiter, reply, released);
        plan.WriteAsync(_file, CancellationToken.None)
            .PipeTo(Self, success: () => new BitmapsWritten(plan, afterWrite, undo), failure: e => new BitmapsWriteFailed(plan, afterWrite, undo, e));
    }

    /// <summary>A request's answer once the flush that made its directory durable is done.</summary>
    private sealed record ReplyAfterFlush(IActorRef Requester, object Reply, long ReleasedMemory);

    private void Committed(BitmapsWritten w)
    {
        _storing = null;
        _bitmaps.Commit(w.Plan);
        SetBitmapsExtension(w.Plan.Extension, dryRun: false);
        foreach (long c in w.Plan.Release) _fences.Retire(c);
        _flush.AddDecrements(w.Plan.Release);
        _flush.Request(w.Waiter);
        NextBitmapOperation();
    }

    private void StoreFailed(BitmapsWriteFailed f)
    {
        _storing = null;
        // The new clusters hold nothing anyone names: they go back.
        foreach (var (cluster, _) in f.Plan.Assigned) _fences.Retire(cluster);
        _flush.AddDecrements(f.Plan.Assigned.Select(a => a.Cluster));
        _log.Error(f.Cause, "Image {0}: writing the bitmap directory failed", _name);
        var waiter = f.Waiter is ReplyAfterFlush r ? r.Requester : f.Waiter;
        Failed(waiter!, f.Undo, IoErrors.Map(f.Cause, _name));
        NextBitmapOperation();
    }

    private void Failed(object waiter, Action? undo, Exception error)
    {
        undo?.Invoke();
        if (waiter is FinalFlush)
        {
            // The bitmaps stay in use on disk: the next open reports them inconsistent, never wrong.
            _log.Warning("Image {0}: its bitmaps could not be stored at close ({1}); they will be reported inconsistent", _name, error.Message);
            _flush.Request(new FinalFlush());
        }
        else if (waiter is IActorRef requester) requester.Tell(new Status.Failure(error));
    }

    private void NextBitmapOperation()
    {
        if (_storing is not null || !_bitmapQueue.TryDequeue(out var next)) return;
        if (next.Message is StoreAtClose) StoreBitmapsAndClose();
        else Self.Tell(next.Message, next.Sender);
    }

    /// <summary>The header names the directory (autoclear bit 0 set with it), or no longer has the extension (nor the bit).</summary>
    private void SetBitmapsExtension(BitmapsExtension? extension, bool dryRun)
    {
        if (extension is { } ext) BitmapKeeper.SetExtension(_header, ext);
        else
        {
            _header.Extensions.RemoveAll(e => e.Type == HeaderExtensionType.Bitmaps);
            _header.AutoclearFeatures &= ~FeatureBits.AutoclearBitmaps;
        }
        if (dryRun) return;
        _counting.HeaderDirty = true;
        _headerAreaDirty = true;
    }
}
