using QcowActors.Actors.Image;

namespace QcowActors.Actors.Service;

/// <summary>
/// One request's hold on one image: it entered the image's I/O gate once when opened, and its
/// first operation uses that entry, so a small GET or PUT enters the gate once. Later operations
/// of a long transfer (a GET segment, an upload chunk) enter anew, so the gate's epochs move on
/// and clusters freed meanwhile become reusable. If the image closed between two operations, the
/// next one opens it again. Operations may run concurrently (an upload keeps two writes in flight).
/// </summary>
public sealed class ImageSession : IDiskReader
{
    private readonly ImageService _service;
    private ImageHandle _handle;
    private IoEpochGate.Token? _token;

    internal ImageSession(ImageService service, ImageHandle handle, IoEpochGate.Token token)
    {
        _service = service;
        _handle = handle;
        _token = token;
    }

    public string Name => _handle.Image;
    public long VirtualSize => _handle.VirtualSize;

    /// <summary>The entry taken at open the first time, a new one after that (re-opening the image if it closed meanwhile).</summary>
    private async ValueTask<(ImageHandle Handle, IoEpochGate.Token Token)> EnterAsync(CancellationToken ct)
    {
        if (Interlocked.Exchange(ref _token, null) is { } first) return (Volatile.Read(ref _handle), first);
        var handle = Volatile.Read(ref _handle);
        if (handle.Gate.TryEnter() is { } token) return (handle, token);
        var entered = await _service.EnterAsync(handle.Image, ct).ConfigureAwait(false);
        Volatile.Write(ref _handle, entered.Handle);
        return entered;
    }

    /// <summary>A mapped read of [offset, offset+length); the plan holds its own gate entry until disposed.</summary>
    public async Task<DiskReadPlan> PlanReadAsync(long offset, long length, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(ct).ConfigureAwait(false);
        return await _service.PlanReadAsync(handle, token, offset, length, ct).ConfigureAwait(false);
    }

    public async Task WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(ct).ConfigureAwait(false);
        using (token) await _service.WriteAsync(handle, offset, data, ct).ConfigureAwait(false);
    }

    public async Task ZeroAsync(long offset, long length, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(ct).ConfigureAwait(false);
        using (token) await _service.ZeroAsync(handle, offset, length, ct).ConfigureAwait(false);
    }

    public async Task FlushAsync(CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(ct).ConfigureAwait(false);
        using (token) await _service.FlushAsync(handle, ct).ConfigureAwait(false);
    }

    public ValueTask DisposeAsync()
    {
        Interlocked.Exchange(ref _token, null)?.Dispose();
        return ValueTask.CompletedTask;
    }
}
