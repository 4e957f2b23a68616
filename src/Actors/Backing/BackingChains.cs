using QcowActors.Actors.Image;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Actors.Store;
using QcowActors.Format;

namespace QcowActors.Actors.Backing;

/// <summary>
/// The backing disks open on this node, shared: one read-only, shared-lock open per file, counted
/// by the overlays (and backing images) above it and closed when the last one lets go. Chains are
/// resolved with <see cref="BackingReference"/> and bounded: at most <see cref="MaxDepth"/> backing
/// images beneath an image, no file twice in one chain.
/// </summary>
public sealed class BackingChains
{
    /// <summary>Backing images beneath one image, at most (QEMU has no bound; a deeper chain is refused).</summary>
    public const int MaxDepth = 16;
    private readonly IImageFileSystem _fs;
    private readonly CompressedClusterReader _inflater = new(2 * Environment.ProcessorCount);
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<string, Shared> _open = new(StringComparer.Ordinal);
    private readonly BackingIndex _index;

    private sealed class Shared(BackingDisk disk)
    {
        public BackingDisk Disk { get; } = disk;
        public int Users { get; set; } = 1;
    }

    /// <summary>Thrown inside the gate when a backing file is locked; the lock's holder may be this node's own writer, which is asked to let go outside the gate.</summary>
    private sealed class LockedBacking(string name, Exception inner) : Exception(name, inner)
    {
        public string Name { get; } = name;
    }

    public BackingChains(string directory, IImageFileSystem fs)
    {
        Directory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        _fs = fs;
        _index = new BackingIndex(Directory);
    }

    public string Directory { get; }

    /// <summary>
    /// Closes this node's writer of an image (the store's <see cref="ReleaseLocalImage"/>) so it can
    /// be opened as a backing image; set by the host once the store runs.
    /// </summary>
    public Func<string, Task>? ReleaseLocalWriter { get; set; }

    /// <summary>The images of the store whose headers name <paramref name="fileName"/> as their backing file.</summary>
    public Task<IReadOnlyList<string>> UsersOfAsync(string fileName, CancellationToken ct) => _index.UsersOfAsync(fileName, ct);

    /// <summary>Whether an overlay on this node reads the file as a backing disk now.</summary>
    public bool IsOpen(string fileName)
    {
        _gate.Wait();
        try { return _open.ContainsKey(fileName); }
        finally { _gate.Release(); }
    }

    /// <summary>
    /// Opens, or shares, the chain beneath an image whose header names a backing file (422 when the
    /// name leads outside the store, to no image, in a cycle or too deep; 409 when QEMU holds a
    /// file of it for writing; 503 when another node writes one). Release it once with <see cref="ReleaseAsync"/>.
    /// </summary>
    public async Task<BackingDisk> AcquireAsync(string image, QcowHeader header, CancellationToken ct)
    {
        string backing = header.BackingFile ?? throw new ArgumentException("the image has no backing file", nameof(header));
        for (int attempt = 0; ; attempt++)
        {
            string locked;
            await _gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                return await AcquireLockedAsync(image, backing, BackingReference.FormatOf(header), [image + ImageNames.Extension], ct).ConfigureAwait(false);
            }
            catch (LockedBacking e) when (attempt == 0 && ReleaseLocalWriter is not null)
            {
                // Perhaps this node writes it (an overlay made after it was opened): let go of it, then try again.
                locked = e.Name;
            }
            catch (LockedBacking e)
            {
                throw new ImageException(ImageError.Unavailable,
                    $"image '{image}': its backing image '{e.Name}' is open for writing elsewhere (another node, or a tool holding its lock); try again",
                    null, e.InnerException);
            }
            finally
            {
                _gate.Release();
            }
            // Outside the gate: closing that writer may release a chain of its own.
            await ReleaseLocalWriter!(Path.GetFileNameWithoutExtension(locked)).ConfigureAwait(false);
        }
    }

    /// <summary>Opens, or shares, an image of the store as a read-only disk (a raw image read by name). Release it with <see cref="ReleaseAsync"/>.</summary>
    public async Task<BackingDisk> AcquireImageAsync(string image, BackingTarget target, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await AcquireLockedAsync(image, target.FileName, target.Format, [], ct).ConfigureAwait(false);
        }
        catch (LockedBacking e)
        {
            throw new ImageException(ImageError.Unavailable, $"image '{image}' is held open for writing by another process (its lock is taken); try again", null, e.InnerException);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<BackingDisk> AcquireLockedAsync(string image, string name, string? format, List<string> above, CancellationToken ct)
    {
        var target = BackingReference.Resolve(Directory, image, name, format);
        if (above.Count > MaxDepth)
            throw BackingReference.Refused(image, name, $"is more than {MaxDepth} backing images deep (chain {string.Join(" → ", above)} → …)");
        if (above.Contains(target.FileName))
            throw BackingReference.Refused(image, name, $"makes a cycle ({string.Join(" → ", above)} → {target.FileName})");
        if (_open.TryGetValue(target.FileName, out var shared))
        {
            var below = new List<string>();
            for (var d = shared.Disk; d is not null; d = d.Backing) below.Add(d.FileName);
            if (below.FirstOrDefault(above.Contains) is { } again)
                throw BackingReference.Refused(image, name, $"makes a cycle ({string.Join(" → ", above.Concat(below))}, {again} twice)");
            if (above.Count - 1 + below.Count > MaxDepth)
                throw BackingReference.Refused(image, name, $"is more than {MaxDepth} backing images deep (chain {string.Join(" → ", above.Concat(below))})");
            shared.Users++;
            return shared.Disk;
        }
        IImageFile file;
        try
        {
            file = _fs.OpenShared(target.Path);
        }
        catch (ImageLockedException e)
        {
            throw new LockedBacking(target.FileName, e);
        }
        catch (ImageInUseException e)
        {
            throw new ImageException(ImageError.Conflict, $"image '{image}': its backing image {e.Message}", "in use", e);
        }
        try
        {
            var disk = target.Format == "raw" ? new RawBackingDisk(target.FileName, file) : await OpenQcowAsync(target, file, above, ct).ConfigureAwait(false);
            _open[target.FileName] = new Shared(disk);
            return disk;
        }
        catch
        {
            await file.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task<BackingDisk> OpenQcowAsync(BackingTarget target, IImageFile file, List<string> above, CancellationToken ct)
    {
        QcowHeader header;
        try
        {
            header = await ImageOpener.ReadHeaderAsync(file, file.Length, ct).ConfigureAwait(false);
        }
        catch (QcowFormatException e)
        {
            throw new ImageException(ImageError.Unsupported, $"backing image '{target.FileName}' is not a usable qcow2 image: {e.Message}", BackingReference.Feature, e);
        }
        if (ImageOpener.DataRefusal(header) is { } refusal)
            throw new ImageException(ImageError.Unsupported, $"backing image '{target.FileName}': {refusal.Detail}", refusal.Feature);
        var l1 = await ImageOpener.ReadTableAsync(file, header.L1TableOffset, header.L1Size, ct).ConfigureAwait(false);
        BackingDisk? below = header.BackingFile is null ? null
            : await AcquireLockedAsync(target.Name, header.BackingFile, BackingReference.FormatOf(header), [.. above, target.FileName], ct).ConfigureAwait(false);
        return new QcowBackingDisk(target.FileName, file, header, l1, _inflater, below);
    }

    /// <summary>Lets go of a chain <see cref="AcquireAsync"/> gave; files no image reads any more are closed (their locks released).</summary>
    public async Task ReleaseAsync(BackingDisk disk)
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            for (BackingDisk? d = disk; d is not null; d = d.Backing)
            {
                var shared = _open[d.FileName];
                if (--shared.Users > 0) return;
                _open.Remove(d.FileName);
                await d.File.DisposeAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
        }
    }
}
