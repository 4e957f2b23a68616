using System.Collections.Concurrent;

namespace QcowActors.Actors.Cluster;

/// <summary>
/// The images this node owns, as granted by their shard entities, and the requests serving each.
/// A request is served here only under a lease taken while the image is owned; a hand-off first
/// stops new leases, waits for the ones in flight (bounded, then cuts them), then closes the
/// image: so no request of this node touches an image after another node may have opened it.
/// The local store opens an image only while it is owned (see <see cref="MayOpen"/>).
/// This is also the one record of activity: an image is idle only when no lease is out and none
/// was taken or returned within the idle window; the entity alone decides on that (one timer).
/// </summary>
public sealed class ImageOwnership
{
    /// <summary>Bit of <see cref="Entry.State"/> set once no new lease may be taken; the low bits count leases out.</summary>
    private const long ReleasingBit = 1L << 62;
    private const long CountMask = (1L << 32) - 1;

    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    internal sealed class Entry
    {
        /// <summary>Leases out and the releasing flag in one word, so taking a lease and starting a release cannot miss each other.</summary>
        public long State;
        public volatile bool Closed;
        /// <summary>Environment.TickCount64 when a lease was last taken or returned.</summary>
        public long LastActive = Environment.TickCount64;
        public readonly TaskCompletionSource Drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
        /// <summary>Cancelled when the image is closed for good: requests still running are cut.</summary>
        public readonly CancellationTokenSource Revoked = new();
    }

    /// <summary>Images granted here (one per live entity).</summary>
    public int Count => _entries.Count;

    /// <summary>Called by the image's entity when it starts on this node.</summary>
    public void Grant(string image) => _entries[image] = new Entry();

    /// <summary>Called by the entity when it has stopped: the image is no longer this node's.</summary>
    public void Revoke(string image)
    {
        if (_entries.TryRemove(image, out var e)) e.Revoked.Cancel();
    }

    public bool Owns(string image) => _entries.TryGetValue(image, out var e) && (Volatile.Read(ref e.State) & ReleasingBit) == 0;

    /// <summary>The store may open the file: owned, or released but with requests still draining.</summary>
    public bool MayOpen(string image) => _entries.TryGetValue(image, out var e) && !e.Closed;

    /// <summary>A lease for one request, or null when the image is not (or no longer) owned here.</summary>
    public Lease? TryAcquire(string image)
    {
        if (!_entries.TryGetValue(image, out var e)) return null;
        // The increment and the flag are one word: a release either sees this lease or we see its flag.
        if ((Interlocked.Increment(ref e.State) & ReleasingBit) != 0)
        {
            Return(e);
            return null;
        }
        Volatile.Write(ref e.LastActive, Environment.TickCount64);
        return new Lease(e);
    }

    /// <summary>No lease is out and none was taken or returned within <paramref name="window"/>.</summary>
    public bool IsIdle(string image, TimeSpan window)
    {
        if (!_entries.TryGetValue(image, out var e)) return true;
        return (Volatile.Read(ref e.State) & CountMask) == 0
            && Environment.TickCount64 - Volatile.Read(ref e.LastActive) >= (long)window.TotalMilliseconds;
    }

    /// <summary>When a lease was last taken or returned (Environment.TickCount64), for closing the least recently used.</summary>
    public long LastActive(string image) => _entries.TryGetValue(image, out var e) ? Volatile.Read(ref e.LastActive) : 0;

    /// <summary>
    /// Starts a release only if the image is idle at this instant (no lease out, none within the
    /// window): from here no lease can be taken, so passivation never cuts a request.
    /// </summary>
    public bool TryBeginIdleRelease(string image, TimeSpan window)
    {
        if (!_entries.TryGetValue(image, out var e)) return false;
        long state = Volatile.Read(ref e.State);
        if (state != 0 || Environment.TickCount64 - Volatile.Read(ref e.LastActive) < (long)window.TotalMilliseconds) return false;
        if (Interlocked.CompareExchange(ref e.State, ReleasingBit, 0) != 0) return false;
        e.Drained.TrySetResult();
        return true;
    }

    /// <summary>Stops new leases; completes when the leases in flight are returned.</summary>
    public Task BeginRelease(string image)
    {
        if (!_entries.TryGetValue(image, out var e)) return Task.CompletedTask;
        long before = Interlocked.Or(ref e.State, ReleasingBit);
        if ((before & CountMask) == 0) e.Drained.TrySetResult();
        return e.Drained.Task;
    }

    /// <summary>From now on the store must not open the image again, and requests still running are cut.</summary>
    public void CloseForGood(string image)
    {
        if (!_entries.TryGetValue(image, out var e)) return;
        e.Closed = true;
        e.Revoked.Cancel();
    }

    private static void Return(Entry e)
    {
        long after = Interlocked.Decrement(ref e.State);
        Volatile.Write(ref e.LastActive, Environment.TickCount64);
        if (after == ReleasingBit) e.Drained.TrySetResult();
    }

    public sealed class Lease : IDisposable
    {
        private Entry? _entry;

        internal Lease(Entry entry) => _entry = entry;

        /// <summary>Cancelled when the image is closed under the request (a hand-off that waited its bound): the request must end with an error.</summary>
        public CancellationToken Revoked => _entry?.Revoked.Token ?? CancellationToken.None;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _entry, null) is { } e) Return(e);
        }
    }
}
