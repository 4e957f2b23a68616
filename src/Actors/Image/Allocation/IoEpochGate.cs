namespace QcowActors.Actors.Image;

/// <summary>
/// Keeps host clusters from being reused while data I/O that may still touch them is in flight.
/// Every read and write enters the gate before it asks for a mapping and leaves after its last
/// byte moved. A cluster whose last reference is dropped is tagged with <see cref="Advance"/>'s
/// epoch; it may be reused once <see cref="OldestActive"/> has passed that tag, because every
/// request that could have mapped it entered before the tag was taken.
/// The lock guards a few counters only (no I/O under it).
/// </summary>
public sealed class IoEpochGate
{
    private readonly object _sync = new();
    private readonly SortedDictionary<long, int> _active = [];
    private long _epoch = 1;
    private bool _closed;
    private TaskCompletionSource? _drained;

    /// <summary>Enters the gate; null when the image is closing (the caller re-resolves the image).</summary>
    public Token? TryEnter()
    {
        lock (_sync)
        {
            if (_closed) return null;
            long e = _epoch;
            _active[e] = _active.TryGetValue(e, out int n) ? n + 1 : 1;
            return new Token(this, e);
        }
    }

    /// <summary>No request is in flight.</summary>
    public bool IsIdle
    {
        get { lock (_sync) return _active.Count == 0; }
    }

    public long Advance()
    {
        lock (_sync) return ++_epoch;
    }

    /// <summary>The epoch of the oldest request still in flight, or the current epoch when none is.</summary>
    public long OldestActive()
    {
        lock (_sync)
        {
            foreach (var kv in _active) return kv.Key;
            return _epoch;
        }
    }

    private readonly CancellationTokenSource _closing = new();

    /// <summary>Cancelled when the gate closes (its image incarnation is going away).</summary>
    public CancellationToken Closing => _closing.Token;

    /// <summary>Refuses new entries and completes when every request in flight has left.</summary>
    public Task CloseAsync()
    {
        if (!_closing.IsCancellationRequested) _closing.Cancel();
        lock (_sync)
        {
            _closed = true;
            if (_active.Count == 0) return Task.CompletedTask;
            _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _drained.Task;
        }
    }

    private void Exit(long epoch)
    {
        TaskCompletionSource? done = null;
        lock (_sync)
        {
            if (--_active[epoch] == 0) _active.Remove(epoch);
            if (_active.Count == 0 && _drained is not null) done = _drained;
        }
        done?.TrySetResult();
    }

    public sealed class Token(IoEpochGate gate, long epoch) : IDisposable
    {
        private int _disposed;
        public long Epoch => epoch;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) gate.Exit(epoch);
        }
    }
}
