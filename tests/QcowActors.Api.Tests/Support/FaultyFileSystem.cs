using QcowActors.Actors.Io;

namespace QcowActors.Api.Tests.Support;

internal enum IoKind
{
    Read,
    Write,
    /// <summary>IImageFile.FlushAsync: an fsync of the image file.</summary>
    Fsync,
}

/// <summary>One call that went through the seam, numbered in the order the calls were made.</summary>
internal sealed record IoEvent(long Sequence, IoKind Kind, string FileName, long Offset, long Length);

/// <summary>
/// The engine's real file system (<see cref="DiskFileSystem"/>) behind the engine's I/O seam, with
/// faults that can be switched on and off while the server runs, and a record of every read, write
/// and fsync of an image file. Register it before AddQcowStore() (which only adds DiskFileSystem
/// when no IImageFileSystem is registered); <see cref="ApiServer"/> does that.
/// </summary>
internal sealed class FaultyFileSystem : IImageFileSystem
{
    /// <summary>ENOSPC as .NET reports it on Linux; the engine maps it to 507.</summary>
    public static IOException DiskFull() => new("No space left on device", 28);

    /// <summary>EIO: a failing disk.</summary>
    public static IOException DiskError() => new("Input/output error", 5);

    private readonly DiskFileSystem _disk = new();
    private readonly Lock _lock = new();
    private readonly List<IoEvent> _events = [];
    private readonly List<(Func<IoEvent, bool> Match, TaskCompletionSource Signal)> _waiting = [];
    private long _sequence;
    private Exception? _writeFault;
    private Exception? _readFault;
    private Exception? _fsyncFault;
    private long _readBudget;

    /// <summary>Every later write (and image creation) fails with <paramref name="error"/> and writes nothing.</summary>
    public void FailWrites(Exception error)
    {
        lock (_lock)
            _writeFault = error;
    }

    /// <summary>
    /// Reads go on succeeding until <paramref name="bytes"/> more bytes have been read; the read that
    /// would pass that point, and every read after it, fails with <paramref name="error"/>.
    /// </summary>
    public void FailReadsAfter(long bytes, Exception error)
    {
        lock (_lock)
        {
            _readFault = error;
            _readBudget = bytes;
        }
    }

    /// <summary>Every later fsync of an image fails with <paramref name="error"/> (its writes went in: only their durability is unknown).</summary>
    public void FailFsyncs(Exception error)
    {
        lock (_lock)
            _fsyncFault = error;
    }

    private Exception? FsyncFault()
    {
        lock (_lock)
            return _fsyncFault;
    }

    /// <summary>Every later read fails with <paramref name="error"/>.</summary>
    public void FailReads(Exception error) => FailReadsAfter(0, error);

    /// <summary>Switches every fault off.</summary>
    public void Heal()
    {
        lock (_lock)
        {
            _writeFault = null;
            _readFault = null;
            _fsyncFault = null;
        }
    }

    /// <summary>The sequence number the next event will get: take one before an action, then look at what came after.</summary>
    public long Mark()
    {
        lock (_lock)
            return _sequence;
    }

    /// <summary>Reads, writes and fsyncs of the image's file, in order, from <paramref name="since"/> on.</summary>
    public IReadOnlyList<IoEvent> EventsOf(string image, long since = 0)
    {
        string file = image + ".qcow2";
        lock (_lock)
            return [.. _events.Where(e => e.Sequence >= since && e.FileName == file)];
    }

    /// <summary>Waits until an event of this kind on the image's file happens at or after <paramref name="since"/>.</summary>
    public async Task WaitForAsync(string image, IoKind kind, long since, TimeSpan? timeout = null)
    {
        string file = image + ".qcow2";
        bool Match(IoEvent e) => e.Sequence >= since && e.Kind == kind && e.FileName == file;
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_events.Any(Match))
                return;
            _waiting.Add((Match, signal));
        }
        try
        {
            await signal.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"no {kind} of {file} happened");
        }
    }

    public IImageFile Open(string path, bool writable) => new FaultyFile(this, _disk.Open(path, writable));

    public async Task CreateAtomicAsync(string finalPath, IEnumerable<(long Offset, ReadOnlyMemory<byte> Bytes)> writes, long length, CancellationToken ct)
    {
        if (WriteFault() is { } fault)
            throw fault;
        await _disk.CreateAtomicAsync(finalPath, writes, length, ct);
    }

    public void SyncDirectory(string directory) => _disk.SyncDirectory(directory);

    private Exception? WriteFault()
    {
        lock (_lock)
            return _writeFault;
    }

    /// <summary>The fault for a read of <paramref name="length"/> bytes, or null when it may go ahead.</summary>
    private Exception? ReadFault(int length)
    {
        lock (_lock)
        {
            if (_readFault is null)
                return null;
            if (_readBudget < length)
            {
                _readBudget = 0;
                return _readFault;
            }
            _readBudget -= length;
            return null;
        }
    }

    private void Record(IoKind kind, string path, long offset, long length)
    {
        List<TaskCompletionSource> ready;
        lock (_lock)
        {
            var e = new IoEvent(_sequence++, kind, Path.GetFileName(path), offset, length);
            _events.Add(e);
            ready = [.. _waiting.Where(w => w.Match(e)).Select(w => w.Signal)];
            _waiting.RemoveAll(w => w.Match(e));
        }
        foreach (var signal in ready)
            signal.TrySetResult();
    }

    private sealed class FaultyFile(FaultyFileSystem fs, IImageFile inner) : IImageFile
    {
        public string Path => inner.Path;
        public long Length => inner.Length;

        public async ValueTask ReadAsync(Memory<byte> buffer, long offset, CancellationToken ct)
        {
            if (fs.ReadFault(buffer.Length) is { } fault)
                throw fault;
            await inner.ReadAsync(buffer, offset, ct);
            fs.Record(IoKind.Read, Path, offset, buffer.Length);
        }

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, long offset, CancellationToken ct)
        {
            if (fs.WriteFault() is { } fault)
                throw fault;
            await inner.WriteAsync(data, offset, ct);
            fs.Record(IoKind.Write, Path, offset, data.Length);
        }

        public async ValueTask FlushAsync(CancellationToken ct)
        {
            if (fs.FsyncFault() is { } fault)
                throw fault;
            await inner.FlushAsync(ct);
            fs.Record(IoKind.Fsync, Path, 0, 0);
        }

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
