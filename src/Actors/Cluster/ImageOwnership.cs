using System.Collections.Concurrent;

namespace QcowActors.Actors.Cluster;

/// <summary>
/// The images this node owns, as granted by their shard entities, and the requests serving each.
/// A request is served here only under a lease taken while the image is owned; a hand-off first
/// stops new leases, waits for the ones in flight, then closes the image: so no request of this
/// node touches an image after another node may have opened it. The local store opens an image
/// only while it is owned (see <see cref="MayOpen"/>).
/// </summary>
public sealed class ImageOwnership
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    internal sealed class Entry
    {
        public int InFlight;
        public volatile bool Releasing;
        public volatile bool Closed;
        public long LastKept = Environment.TickCount64;
        public readonly TaskCompletionSource Drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Called by the image's entity when it starts on this node.</summary>
    public void Grant(string image) => _entries[image] = new Entry();

    /// <summary>Called by the entity when it has stopped: the image is no longer this node's.</summary>
    public void Revoke(string image) => _entries.TryRemove(image, out _);

    public bool Owns(string image) => _entries.TryGetValue(image, out var e) && !e.Releasing;

    /// <summary>The store may open the file: owned, or released but with requests still draining.</summary>
    public bool MayOpen(string image) => _entries.TryGetValue(image, out var e) && !e.Closed;

    /// <summary>A lease for one request, or null when the image is not (or no longer) owned here.</summary>
    public Lease? TryAcquire(string image)
    {
        if (!_entries.TryGetValue(image, out var e) || e.Releasing) return null;
        Interlocked.Increment(ref e.InFlight);
        if (e.Releasing)
        {
            Release(e);
            return null;
        }
        return new Lease(this, e);
    }

    /// <summary>True at most once per interval per image: time to tell the region the image is in use.</summary>
    public bool ShouldKeep(string image, TimeSpan interval)
    {
        if (!_entries.TryGetValue(image, out var e)) return false;
        long now = Environment.TickCount64, last = Volatile.Read(ref e.LastKept);
        return now - last >= interval.TotalMilliseconds && Interlocked.CompareExchange(ref e.LastKept, now, last) == last;
    }

    /// <summary>Stops new leases; completes when the leases in flight are returned.</summary>
    public Task BeginRelease(string image)
    {
        if (!_entries.TryGetValue(image, out var e)) return Task.CompletedTask;
        e.Releasing = true;
        if (Volatile.Read(ref e.InFlight) == 0) e.Drained.TrySetResult();
        return e.Drained.Task;
    }

    /// <summary>From now on the store must not open the image again (it is being closed for good).</summary>
    public void CloseForGood(string image)
    {
        if (_entries.TryGetValue(image, out var e)) e.Closed = true;
    }

    private static void Release(Entry e)
    {
        if (Interlocked.Decrement(ref e.InFlight) == 0 && e.Releasing) e.Drained.TrySetResult();
    }

    public sealed class Lease : IDisposable
    {
        private ImageOwnership? _owner;
        private readonly Entry _entry;

        internal Lease(ImageOwnership owner, Entry entry)
        {
            _owner = owner;
            _entry = entry;
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _owner, null) is not null) Release(_entry);
        }
    }
}
