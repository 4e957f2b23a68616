using Akka.Actor;
using Akka.Hosting;
using QcowActors.Actors.Backing;
using QcowActors.Actors.Image;
using QcowActors.Actors.Store;
using QcowActors.Format;

namespace QcowActors.Actors.Service;

/// <summary>
/// The engine as the HTTP layer sees it. Actors decide mappings and allocation; the bytes move
/// here, between the caller's buffers and the file, with positional I/O and no actor in between.
/// A request enters an image's I/O gate once (<see cref="OpenAsync"/>); every image message it
/// sends then goes straight to that image's supervisor through its <see cref="ImageHandle"/>.
/// </summary>
public sealed partial class ImageService : IImageService
{
    private TimeSpan AskTimeout => Options.AskTimeout;
    /// <summary>L2 tables asked for in parallel when mapping a long range.</summary>
    private const int MapParallelism = 32;
    private readonly IActorRef _store;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, ImageHandle> _handles = new(StringComparer.Ordinal);
    /// <summary>Two clusters per core inflating at once: one computing while the other's data is read.</summary>
    private readonly CompressedClusterReader _inflater = new(2 * Environment.ProcessorCount);

    /// <summary>Compressed clusters of any read (the disk, a snapshot) are inflated here.</summary>
    internal CompressedClusterReader Inflater => _inflater;

    public ImageService(IRequiredActor<ImageStoreActor> store, StoreOptions options, BackingChains chains) : this(store.ActorRef, options, chains) { }

    /// <summary>For tests and hosts that start the store actor themselves.</summary>
    public ImageService(IActorRef store, StoreOptions options, BackingChains? chains = null)
    {
        _store = store;
        Options = options;
        _chains = chains ?? new BackingChains(options.Directory, new Io.DiskFileSystem());
    }

    private readonly BackingChains _chains;

    /// <summary>A raw image of the store by name (no qcow2 image of that name), or null.</summary>
    private string? RawImage(string name) => ImageNames.RawImagePath(_chains.Directory, name);

    public StoreOptions Options { get; }

    /// <summary>Asks the store (create, list, delete, attach).</summary>
    private async Task<T> AskStoreAsync<T>(object message, CancellationToken ct)
    {
        try
        {
            return await _store.Ask<T>(message, AskTimeout, ct).ConfigureAwait(false);
        }
        catch (AskTimeoutException e)
        {
            throw new ImageException(ImageError.Unavailable, "the store did not answer in time; try again", null, e);
        }
    }

    private static void CheckName(string name)
    {
        if (!ImageNames.IsValid(name))
            throw new ImageException(ImageError.InvalidArgument,
                $"'{name}' is not a valid image name: use 1 to 128 of A-Z a-z 0-9 . _ - starting with a letter or digit");
    }

    public Task<ImageInfo> CreateAsync(string name, long virtualSize, int? clusterSize, int? refcountBits, CancellationToken ct)
        => CreateAsync(name, new CreateOptions(virtualSize, clusterSize ?? 65536, refcountBits ?? 16), ct);

    public async Task<ImageInfo> CreateAsync(string name, CreateOptions options, CancellationToken ct)
    {
        CheckName(name);
        if (options.BackingFile is not null) options = await OverlayOptionsAsync(name, options, ct).ConfigureAwait(false);
        return await AskStoreAsync<ImageInfo>(new CreateImage(name, options), ct).ConfigureAwait(false);
    }

    /// <summary>
    /// An overlay's options: "backing" names an image of the store (base, base.qcow2 or base.raw),
    /// recorded as its file name with its format; the size defaults to the backing disk's. The
    /// chain beneath is checked now (as an open would), so a bad one is refused before a file exists.
    /// </summary>
    private async Task<CreateOptions> OverlayOptionsAsync(string name, CreateOptions options, CancellationToken ct)
    {
        string dir = Path.GetFullPath(Options.Directory);
        string given = options.BackingFile!;
        string? file = ImageNames.IsValid(given) && File.Exists(ImageNames.PathFor(dir, given)) ? given + ImageNames.Extension
            : ImageNames.IsValid(given) && File.Exists(ImageNames.RawPathFor(dir, given)) ? given + ImageNames.RawExtension
            : null;
        if (file is null && BackingReference.TryResolvePath(dir, given, out _) is { } named && File.Exists(named.Path)) file = named.FileName;
        if (file is null || Path.GetFileNameWithoutExtension(file) == name)
            throw new ImageException(ImageError.InvalidArgument, $"backing '{given}' names no other image of the store");
        var target = BackingReference.Resolve(dir, name, file, BackingReference.TryResolvePath(dir, file, out _)!.Format);
        long backingSize = await ChainSizeAsync(dir, name, target, ct).ConfigureAwait(false);
        return options with
        {
            VirtualSize = options.VirtualSize > 0 ? options.VirtualSize : backingSize,
            BackingFile = target.FileName,
            BackingFormat = target.Format,
        };
    }

    /// <summary>The backing disk's size, after walking its chain by headers: every name resolves in the store, no cycle, at most <see cref="BackingChains.MaxDepth"/> deep.</summary>
    private static async Task<long> ChainSizeAsync(string dir, string overlay, BackingTarget target, CancellationToken ct)
    {
        long size = -1;
        var seen = new List<string> { overlay + ImageNames.Extension };
        for (var t = target; ;)
        {
            if (seen.Contains(t.FileName))
                throw BackingReference.Refused(overlay, target.FileName, $"makes a cycle ({string.Join(" → ", seen)} → {t.FileName})");
            seen.Add(t.FileName);
            if (seen.Count - 1 > BackingChains.MaxDepth)
                throw BackingReference.Refused(overlay, target.FileName, $"is more than {BackingChains.MaxDepth} backing images deep");
            if (t.Format == "raw")
                return size < 0 ? new FileInfo(t.Path).Length : size;
            var header = await StoreListing.TryReadAsync(t.Path, t.Name).ConfigureAwait(false)
                ?? throw BackingReference.Refused(overlay, target.FileName, $"is not a readable qcow2 image ({t.FileName})");
            if (size < 0) size = header.VirtualSize;
            ct.ThrowIfCancellationRequested();
            if (header.Backing is null) return size;
            var format = header.BackingFormat;
            t = BackingReference.Resolve(dir, t.Name, header.Backing, format);
        }
    }

    public Task<IReadOnlyList<ImageInfo>> ListAsync(CancellationToken ct) => AskStoreAsync<IReadOnlyList<ImageInfo>>(new ListImages(), ct);

    /// <summary>From the image's handle (no round trip once attached); the file's length is read live.</summary>
    public async Task<ImageInfo> GetInfoAsync(string name, CancellationToken ct)
    {
        CheckName(name);
        if (RawImage(name) is { } raw) return ImageInfo.Raw(name, new FileInfo(raw).Length);
        var (h, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token)
        {
            return new ImageInfo(h.Image, "qcow2", h.Version, h.VirtualSize, h.File.Length, h.Layout.ClusterSize,
                h.Layout.RefcountBits, h.Backing, h.Dirty) { BackingFormat = h.BackingFormat };
        }
    }

    public Task<IDiskReader>? OpenRawAsync(string name, CancellationToken ct)
    {
        CheckName(name);
        // An open qcow2 image (the common case) needs no look at the directory.
        if (_handles.ContainsKey(name) || RawImage(name) is not { } raw) return null;
        return OpenRawViewAsync(name, raw, ct);
    }

    private async Task<IDiskReader> OpenRawViewAsync(string name, string raw, CancellationToken ct)
    {
        var target = BackingReference.Resolve(_chains.Directory, name, Path.GetFileName(raw), "raw");
        return new BackingDiskView(_chains, await _chains.AcquireImageAsync(name, target, ct).ConfigureAwait(false));
    }

    public async Task DeleteAsync(string name, CancellationToken ct)
    {
        CheckName(name);
        await AskStoreAsync<ImageDeleted>(new DeleteImage(name), ct).ConfigureAwait(false);
    }

    public async Task CloseAsync(string name, CancellationToken ct)
    {
        CheckName(name);
        if (RawImage(name) is not null) return; // read-only, shared: nothing to let go of beyond the requests' own views
        if (!File.Exists(ImageNames.PathFor(Options.Directory, name)))
            throw new ImageException(ImageError.NotFound, $"image '{name}' does not exist");
        await AskStoreAsync<LocalImageReleased>(new ReleaseLocalImage(name), ct).ConfigureAwait(false);
    }

    public async Task<ImageSession> OpenAsync(string name, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        return new ImageSession(this, handle, token);
    }

    public async Task FlushAsync(string name, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        using (token) await FlushAsync(handle, ct).ConfigureAwait(false);
    }

    internal Task FlushAsync(ImageHandle handle, CancellationToken ct)
        => handle.AskAsync<Flushed>(new FlushImage(handle.Image), AskTimeout, ct);

    /// <summary>
    /// Resolves the image and enters its I/O gate. The handle of an open image is cached: while its
    /// gate admits us, the incarnation is open and its file valid; once it closes (idle, delete)
    /// the gate refuses and we ask the store again, which reopens it.
    /// </summary>
    internal async Task<(ImageHandle Handle, IoEpochGate.Token Token)> EnterAsync(string name, CancellationToken ct)
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
            var handle = await AskStoreAsync<ImageHandle>(new AttachImage(name), ct).ConfigureAwait(false);
            var token = handle.Gate.TryEnter();
            // Closing for recovery: say so now rather than after the wait below.
            if (token is null) handle.ThrowIfFailed();
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

    internal static void ThrowIfRefused(ImageHandle h, bool write)
    {
        h.ThrowIfFailed();
        var r = h.DataRefusal ?? (write ? h.WriteRefusal : null);
        if (r is not null) throw RefusalError(h.Image, r);
    }

    /// <summary>422 naming the feature; 409 for an image other images use as their backing.</summary>
    internal static ImageException RefusalError(string image, ImageRefusal r)
        => new(r.Conflict ? ImageError.Conflict : ImageError.Unsupported, r.Detail.StartsWith("image '", StringComparison.Ordinal) ? r.Detail : $"image '{image}': {r.Detail}", r.Feature);

    internal static void CheckRange(ImageHandle h, long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > h.VirtualSize || length > h.VirtualSize - offset)
            throw new ImageException(ImageError.OutOfRange,
                $"range {offset}+{length} is outside the disk of {h.VirtualSize} bytes");
    }

    /// <summary>The part of [offset, end) inside the L2 table that holds offset.</summary>
    private static long InTable(ClusterLayout layout, long offset, long end)
        => Math.Min(end, layout.L2TableStart(layout.L1Index(offset) + 1)) - offset;

    public async Task<DiskReadPlan> PlanReadAsync(string name, long offset, long length, CancellationToken ct)
    {
        var (handle, token) = await EnterAsync(name, ct).ConfigureAwait(false);
        return await PlanReadAsync(handle, token, offset, length, ct).ConfigureAwait(false);
    }

    /// <summary>Maps the range under the caller's token; the plan owns the token from here (disposed with it, or now on failure).</summary>
    internal async Task<DiskReadPlan> PlanReadAsync(ImageHandle handle, IoEpochGate.Token token, long offset, long length, CancellationToken ct)
    {
        try
        {
            ThrowIfRefused(handle, write: false);
            CheckRange(handle, offset, length);
            var runs = await MapAsync(handle, offset, length, ct).ConfigureAwait(false);
            CheckInsideFile(handle, runs);
            return new MappedReadPlan(handle, _inflater, token, runs, offset, length, Options.CloseReadLimit);
        }
        catch
        {
            token.Dispose();
            throw;
        }
    }

    /// <summary>Data mapped past the end of the image file is a corrupt entry (QEMU marks such an image corrupt), never a run of zeros.</summary>
    internal static void CheckInsideFile(ImageHandle handle, List<MappedRun> runs)
    {
        long end = handle.EndCluster;
        int bits = handle.Layout.ClusterBits;
        foreach (var run in runs)
            if (run.HostOffset >= 0 && !run.IsCompressed && ((run.HostOffset + run.Length - 1) >> bits) >= end)
                throw new ImageException(ImageError.Unsupported,
                    $"image '{handle.Image}': the L2 entry of virtual offset {run.VirtualOffset} points at host offset {run.HostOffset}, past the end of the image file; "
                    + "repair the image with qemu-img check -r all", Corruption.Feature);
    }

    private async Task<List<MappedRun>> MapAsync(ImageHandle handle, long offset, long length, CancellationToken ct)
    {
        long end = offset + length;
        long first = InTable(handle.Layout, offset, end);
        // The common case, a range inside one table already in memory: no array, no task.
        if (first == length && handle.TryMap(offset, length) is { } local) return local;
        var parts = new List<(long Offset, long Length)>();
        for (long o = offset; o < end; o += InTable(handle.Layout, o, end)) parts.Add((o, InTable(handle.Layout, o, end)));
        var results = new List<MappedRun>?[parts.Count];
        for (int k = 0; k < parts.Count; k++) results[k] = handle.TryMap(parts[k].Offset, parts[k].Length);
        if (results.Any(r => r is null))
        {
            using var limiter = new SemaphoreSlim(MapParallelism);
            await Task.WhenAll(parts.Select(async (p, k) =>
            {
                if (results[k] is not null) return;
                await limiter.WaitAsync(ct).ConfigureAwait(false);
                try { results[k] = [.. (await handle.AskAsync<RangeMapping>(new MapRange(handle.Image, p.Offset, p.Length), AskTimeout, ct).ConfigureAwait(false)).Runs]; }
                finally { limiter.Release(); }
            })).ConfigureAwait(false);
        }
        if (results.Length == 1) return results[0]!;
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
        CheckName(name);
        if (RawImage(name) is { } raw)
        {
            // A raw image's extents: its data and its holes (read as zeros).
            await using var view = (BackingDiskView)await OpenRawViewAsync(name, raw, ct).ConfigureAwait(false);
            var runs = new List<ExtentRun>();
            await view.Disk.AddExtentsAsync(0, view.VirtualSize, runs, ct).ConfigureAwait(false);
            var merger = new DiskExtentMerger(view.VirtualSize);
            var extents = merger.Add(runs);
            if (merger.Finish() is { } last) extents.Add(last);
            return extents.ToAsyncEnumerable();
        }
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
            var merger = new DiskExtentMerger(size);
            while (next < tables || ahead.Count > 0)
            {
                for (; next < tables && ahead.Count < MapParallelism; next++)
                    ahead.Enqueue(TableExtentsAsync(handle, next, ct));
                foreach (var extent in merger.Add(await ahead.Dequeue().ConfigureAwait(false))) yield return extent;
            }
            if (merger.Finish() is { } last) yield return last;
        }
        finally
        {
            token.Dispose();
        }
    }

    /// <summary>Runs of table i: computed here for tables in memory (and empty L1 slots), else by its actor; an overlay's resolved through its chain.</summary>
    private async Task<IReadOnlyList<ExtentRun>> TableExtentsAsync(ImageHandle handle, long i, CancellationToken ct)
    {
        var runs = handle.TryExtents(i) ?? (await handle.AskAsync<ExtentRuns>(new GetL2Extents(handle.Image, i), AskTimeout, ct).ConfigureAwait(false)).Runs;
        // An overlay's unallocated clusters are what its backing chain has there.
        return handle.BackingDisk is { } backing ? await backing.ResolveAsync(runs, ct).ConfigureAwait(false) : runs;
    }
}
