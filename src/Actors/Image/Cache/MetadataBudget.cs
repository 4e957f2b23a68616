using System.Collections.Concurrent;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// The bytes every open image's metadata may take in memory — L1 and refcount tables, L2 tables,
/// refcount blocks — per image and for the whole process. Bytes are reserved before they exist,
/// so the totals hold at every moment, during flushes and after failures: a request that cannot
/// reserve waits (see <see cref="MetadataCache"/>). A share of each budget is kept from requests
/// for counting new clusters and for flushes, which need a few blocks of their own to finish and
/// so must never wait behind requests.
/// Thread-safe: every image's supervisor reserves from the one process-wide instance.
/// </summary>
public sealed class MetadataBudget
{
    /// <summary>The least per-image budget the server accepts at start: a working set of QEMU's largest (2 MiB) clusters and the flush share.</summary>
    public const long MinPerImageBytes = 16L << 20;
    internal const int LargestCluster = 1 << QcowLimits.MaxClusterBits;
    /// <summary>Clusters of the flush share: a refcount block read back for decrements, and the header.</summary>
    internal const int FlushReserveClusters = 2;

    private long _used;
    private readonly ConcurrentDictionary<ICacheMember, byte> _members = new();
    private readonly ConcurrentDictionary<ICacheMember, byte> _waiting = new();

    /// <summary>
    /// Budgets below <see cref="MinPerImageBytes"/> are for tests of small-cluster images; an image
    /// whose tables and working set do not fit its budget is refused at open with a clear error.
    /// </summary>
    public MetadataBudget(long perImageBytes, long totalBytes)
    {
        if (perImageBytes <= 0)
            throw new ArgumentOutOfRangeException(nameof(perImageBytes), perImageBytes, "the per-image metadata budget must be positive");
        if (totalBytes < perImageBytes)
            throw new ArgumentOutOfRangeException(nameof(totalBytes), totalBytes, "the process metadata budget must be at least the per-image budget");
        PerImageBytes = perImageBytes;
        TotalBytes = totalBytes;
    }

    public long PerImageBytes { get; }
    public long TotalBytes { get; }
    /// <summary>Of <see cref="TotalBytes"/>, what requests may not take (counting and flushes may): two of the largest clusters (a quarter of a small budget).</summary>
    public long FlushReserveBytes => Math.Min(FlushReserveClusters * (long)LargestCluster, TotalBytes / 4);
    public long UsedBytes => Interlocked.Read(ref _used);
    /// <summary>Images currently holding metadata.</summary>
    public int Members => _members.Count;
    /// <summary>Buffers kept for reuse, not reserved by any image.</summary>
    public long SpareBytes => Pool.SpareBytes;

    /// <summary>Cluster-sized buffers for tables and blocks, recycled within this budget.</summary>
    internal ClusterBufferPool Pool { get; } = new();

    /// <summary>Takes bytes if they fit; counting and flushes (<paramref name="priority"/>) may dip into the reserved share, requests may not.</summary>
    internal bool TryReserve(long bytes, bool priority)
    {
        if (bytes <= 0) return true;
        long limit = priority ? TotalBytes : TotalBytes - FlushReserveBytes;
        long used = Interlocked.Read(ref _used);
        while (true)
        {
            if (used + bytes > limit) return false;
            long seen = Interlocked.CompareExchange(ref _used, used + bytes, used);
            if (seen == used) break;
            used = seen;
        }
        // Spare buffers kept for reuse plus what is reserved stay within the total.
        Pool.TrimTo(TotalBytes - (used + bytes));
        return true;
    }

    internal void Release(long bytes)
    {
        if (bytes <= 0) return;
        long after = Interlocked.Add(ref _used, -bytes);
        if (after < 0) throw new InvalidOperationException($"metadata budget released more than it reserved ({after})");
        if (!_waiting.IsEmpty) WakeWaiters();
    }

    /// <summary>
    /// A buffer whose bytes were released: kept for reuse while reserved plus spare bytes fit the
    /// total, else left to the GC. Tables dropped and read again (or created) then reuse buffers
    /// rather than churning the large-object heap, whose garbage would sit in memory until a full
    /// collection: the process stays within the budget in fact, not only in the books.
    /// </summary>
    internal void Recycle(byte[] buffer) => Pool.Return(buffer, TotalBytes - UsedBytes);

    internal void Join(ICacheMember member) => _members.TryAdd(member, 0);

    internal void Leave(ICacheMember member)
    {
        _members.TryRemove(member, out _);
        _waiting.TryRemove(member, out _);
    }

    /// <summary>
    /// The process is out of room for <paramref name="requester"/>: it is told when bytes are
    /// released, and room is asked of the image that can give it soonest — the one holding the
    /// most clean metadata (dropped at once), else the one holding the most dirty metadata
    /// (written back, then dropped). The requester has already dropped its own clean entries.
    /// </summary>
    internal void NeedRoom(ICacheMember requester, long bytes)
    {
        _waiting.TryAdd(requester, 0);
        ICacheMember? cleanest = null, dirtiest = null;
        long clean = 0, dirty = 0;
        foreach (var member in _members.Keys)
        {
            long c = member.CleanBytes, d = member.DirtyBytes;
            if (member != requester && c > clean) (cleanest, clean) = (member, c);
            if (d > dirty) (dirtiest, dirty) = (member, d);
        }
        (cleanest ?? dirtiest)?.Reclaim(bytes);
    }

    private void WakeWaiters()
    {
        foreach (var member in _waiting.Keys)
            if (_waiting.TryRemove(member, out _)) member.RoomFreed();
    }

    /// <summary>
    /// Reserves for a task outside any image's mailbox (an image being opened): waits for room,
    /// asking other images for it, up to <paramref name="timeout"/>; false when none came.
    /// </summary>
    internal async Task<bool> ReserveAsync(long bytes, TimeSpan timeout, CancellationToken ct)
    {
        if (TryReserve(bytes, priority: false)) return true;
        var waiter = new Waiter();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        try
        {
            while (true)
            {
                var signal = waiter.Arm();
                NeedRoom(waiter, bytes);
                if (TryReserve(bytes, priority: false)) return true;
                await signal.WaitAsync(deadline.Token).ConfigureAwait(false);
                if (TryReserve(bytes, priority: false)) return true;
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return false;
        }
        finally
        {
            Leave(waiter);
        }
    }

    /// <summary>A task waiting for room: holds nothing, wakes when bytes are released.</summary>
    private sealed class Waiter : ICacheMember
    {
        private TaskCompletionSource _signal = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long CleanBytes => 0;
        public long DirtyBytes => 0;
        public void Reclaim(long bytes) { }
        public void RoomFreed() => _signal.TrySetResult();

        public Task Arm()
        {
            if (_signal.Task.IsCompleted) _signal = new(TaskCreationOptions.RunContinuationsAsynchronously);
            return _signal.Task;
        }
    }
}

/// <summary>An image holding metadata under a <see cref="MetadataBudget"/>; its methods are called from any thread.</summary>
internal interface ICacheMember
{
    /// <summary>Bytes it could drop at once (clean, not in use); a hint read without a lock.</summary>
    long CleanBytes { get; }
    /// <summary>Bytes that need writing back before they can be dropped; a hint.</summary>
    long DirtyBytes { get; }
    /// <summary>Drop clean entries, or write back and then drop, to free about <paramref name="bytes"/>.</summary>
    void Reclaim(long bytes);
    /// <summary>Bytes were released somewhere: try again.</summary>
    void RoomFreed();
}
