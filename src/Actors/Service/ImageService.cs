using Akka.Actor;
using Akka.Hosting;
using QcowActors.Actors.Image;
using QcowActors.Actors.Store;
using QcowActors.Format;

namespace QcowActors.Actors.Service;

/// <summary>
/// The engine as the HTTP layer sees it. Actors decide mappings and allocation; the bytes move
/// here, between the caller's buffers and the file, with positional I/O and no actor in between.
/// </summary>
public sealed partial class ImageService : IImageService
{
    private TimeSpan AskTimeout => Options.AskTimeout;
    /// <summary>L2 tables asked for in parallel when mapping a long range.</summary>
    private const int MapParallelism = 32;
    private readonly IActorRef _store;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, ImageHandle> _handles = new(StringComparer.Ordinal);

    public ImageService(IRequiredActor<ImageStoreActor> store, StoreOptions options) : this(store.ActorRef, options) { }

    /// <summary>For tests and hosts that start the store actor themselves.</summary>
    public ImageService(IActorRef store, StoreOptions options)
    {
        _store = store;
        Options = options;
    }

    public StoreOptions Options { get; }

    private Task<T> AskAsync<T>(object message, CancellationToken ct) => AskAsync<T>(_store, message, ct);

    /// <summary>Asks the store, or an image's supervisor directly (writes, while the caller's gate token keeps it alive).</summary>
    private async Task<T> AskAsync<T>(ICanTell target, object message, CancellationToken ct)
    {
        try
        {
            return await target.Ask<T>(message, AskTimeout, ct).ConfigureAwait(false);
        }
        catch (AskTimeoutException e)
        {
            throw new ImageException(ImageError.Unavailable, "the image did not answer in time", null, e);
        }
    }

    private static void CheckName(string name)
    {
        if (!ImageNames.IsValid(name))
            throw new ImageException(ImageError.InvalidArgument,
                $"'{name}' is not a valid image name: use 1 to 128 of A-Z a-z 0-9 . _ - starting with a letter or digit");
    }

    public Task<ImageInfo> CreateAsync(string name, long virtualSize, int? clusterSize, int? refcountBits, CancellationToken ct)
    {
        CheckName(name);
        var opts = new CreateOptions(virtualSize, clusterSize ?? 65536, refcountBits ?? 16);
        return AskAsync<ImageInfo>(new CreateImage(name, opts), ct);
    }

    public Task<IReadOnlyList<ImageInfo>> ListAsync(CancellationToken ct) => AskAsync<IReadOnlyList<ImageInfo>>(new ListImages(), ct);

    /// <summary>From the image's handle (no round trip once attached); the file length is read live.</summary>
    public async Task<ImageInfo> GetInfoAsync(string name, CancellationToken ct)
    {
        var (h, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token)
        {
            return new ImageInfo(h.Image, "qcow2", h.Version, h.VirtualSize, h.File.Length, h.Layout.ClusterSize,
                h.Layout.RefcountBits, h.Backing, h.Dirty);
        }
    }

    public async Task DeleteAsync(string name, CancellationToken ct)
    {
        CheckName(name);
        await AskAsync<ImageDeleted>(new DeleteImage(name), ct).ConfigureAwait(false);
    }

    public async Task FlushAsync(string name, CancellationToken ct)
    {
        CheckName(name);
        await AskAsync<Flushed>(new FlushImage(name), ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Resolves the image and enters its I/O gate. The handle of an open image is cached: while its
    /// gate admits us, the incarnation is open and its file valid; once it closes (passivation,
    /// delete) the gate refuses and we ask the store again, which reopens it.
    /// </summary>
    private async Task<(ImageHandle Handle, IoEpochGate.Token Token)> EnterAsync(string name, CancellationToken ct)
    {
        CheckName(name);
        if (_handles.TryGetValue(name, out var cached))
        {
            var fast = cached.Gate.TryEnter();
            if (fast is not null) return (cached, fast);
            _handles.TryRemove(new KeyValuePair<string, ImageHandle>(name, cached));
        }
        for (int attempt = 0; ; attempt++)
        {
            var handle = await AskAsync<ImageHandle>(new AttachImage(name), ct).ConfigureAwait(false);
            var token = handle.Gate.TryEnter();
            if (token is not null)
            {
                if (_handles.TryAdd(name, handle))
                {
                    // Forget it as soon as that incarnation closes: a closed handle must hold no memory.
                    handle.Gate.Closing.Register(() => _handles.TryRemove(new KeyValuePair<string, ImageHandle>(name, handle)));
                }
                return (handle, token);
            }
            if (attempt > 200) throw new ImageException(ImageError.Unavailable, $"image '{name}' is closing; try again");
            await Task.Delay(Math.Min(5 * (attempt + 1), 50), ct).ConfigureAwait(false);
        }
    }

    private static void ThrowIfRefused(ImageHandle h, bool write)
    {
        var r = h.DataRefusal ?? (write ? h.WriteRefusal : null);
        if (r is not null) throw new ImageException(ImageError.Unsupported, $"image '{h.Image}': {r.Detail}", r.Feature);
    }

    private static void CheckRange(ImageHandle h, long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > h.VirtualSize || length > h.VirtualSize - offset)
            throw new ImageException(ImageError.OutOfRange,
                $"range {offset}+{length} is outside the disk of {h.VirtualSize} bytes");
    }

    /// <summary>Splits [offset, offset+length) at L2 table boundaries: one message per table.</summary>
    private static IEnumerable<(long Offset, long Length)> ByTable(ClusterLayout layout, long offset, long length)
    {
        long end = offset + length;
        while (offset < end)
        {
            long tableEnd = layout.L2TableStart(layout.L1Index(offset) + 1);
            long n = Math.Min(end, tableEnd) - offset;
            yield return (offset, n);
            offset += n;
        }
    }

    public async Task<DiskReadPlan> PlanReadAsync(string name, long offset, long length, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        try
        {
            ThrowIfRefused(handle, write: false);
            CheckRange(handle, offset, length);
            var runs = await MapAsync(handle, offset, length, ct).ConfigureAwait(false);
            return new MappedReadPlan(handle.File, token, runs, offset, length);
        }
        catch
        {
            token.Dispose();
            throw;
        }
    }

    private async Task<List<MappedRun>> MapAsync(ImageHandle handle, long offset, long length, CancellationToken ct)
    {
        var parts = ByTable(handle.Layout, offset, length).ToArray();
        var results = new IReadOnlyList<MappedRun>?[parts.Length];
        // Tables in memory (and empty L1 slots) are mapped here; only the others cost a message.
        for (int k = 0; k < parts.Length; k++)
            results[k] = handle.Directory.TryMap(handle.Image, parts[k].Offset, parts[k].Length);
        if (results.Any(r => r is null))
        {
            using var limiter = new SemaphoreSlim(MapParallelism);
            await Task.WhenAll(parts.Select(async (p, k) =>
            {
                if (results[k] is not null) return;
                await limiter.WaitAsync(ct).ConfigureAwait(false);
                try { results[k] = (await AskAsync<RangeMapping>(new MapRange(handle.Image, p.Offset, p.Length), ct).ConfigureAwait(false)).Runs; }
                finally { limiter.Release(); }
            })).ConfigureAwait(false);
        }
        if (results.Length == 1) return results[0] as List<MappedRun> ?? [.. results[0]!];
        var runs = new List<MappedRun>();
        foreach (var r in results) runs.AddRange(r!);
        return runs;
    }

    /// <summary>
    /// Checks the image now (so a missing or refused image is an error before any byte of the
    /// answer), then yields the extents table by table: a terabyte of scattered clusters is
    /// hundreds of thousands of extents, and the caller never holds more than a window of tables.
    /// </summary>
    public async Task<IAsyncEnumerable<DiskExtent>> GetExtentsAsync(string name, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token) ThrowIfRefused(handle, write: false);
        return StreamExtentsAsync(name, ct);
    }

    private async IAsyncEnumerable<DiskExtent> StreamExtentsAsync(string name, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        try
        {
            ThrowIfRefused(handle, write: false);
            long size = handle.VirtualSize;
            long tables = handle.Layout.L1EntriesFor(size);
            // Tables not in memory are asked for MapParallelism at a time, ahead of the one being yielded.
            var ahead = new Queue<Task<IReadOnlyList<ExtentRun>>>();
            long next = 0;
            DiskExtent? open = null;
            while (next < tables || ahead.Count > 0)
            {
                for (; next < tables && ahead.Count < MapParallelism; next++)
                    ahead.Enqueue(TableExtentsAsync(handle, next, ct));
                foreach (var run in await ahead.Dequeue().ConfigureAwait(false))
                {
                    if (run.Start >= size) break;
                    long length = Math.Min(run.Length, size - run.Start);
                    bool zero = run.Kind == ExtentKind.Zero;
                    if (open is not null && open.Zero == zero)
                    {
                        open = open with { Length = open.Length + length };
                        continue;
                    }
                    if (open is not null) yield return open;
                    open = new DiskExtent(run.Start, length, zero, zero);
                }
            }
            if (open is not null) yield return open;
        }
        finally
        {
            token.Dispose();
        }
    }

    /// <summary>Runs of table i: computed here for tables in memory (and empty L1 slots), else by its actor.</summary>
    private async Task<IReadOnlyList<ExtentRun>> TableExtentsAsync(ImageHandle handle, long i, CancellationToken ct)
    {
        if (handle.Directory.TryExtents(i) is { } local) return local;
        return (await AskAsync<ExtentRuns>(new GetL2Extents(handle.Image, i), ct).ConfigureAwait(false)).Runs;
    }
}
