using QcowActors.Actors.Image;
using QcowActors.Actors.Io;

namespace QcowActors.Actors.Backing;

/// <summary>
/// A read-only virtual disk beneath an overlay: a raw file or a qcow2 image of the store (with its
/// own backing disk, if any). Opened read-only with a shared lock and shared by every overlay on
/// this node that needs it (<see cref="BackingChains"/>); nothing changes it while it is open, so
/// its mapping needs no lease.
/// </summary>
public abstract class BackingDisk
{
    private protected BackingDisk(string fileName, long virtualSize, IImageFile file, BackingDisk? backing)
    {
        FileName = fileName;
        VirtualSize = virtualSize;
        File = file;
        Backing = backing;
    }

    /// <summary>Its file name in the store (base.qcow2, base.raw).</summary>
    public string FileName { get; }
    public long VirtualSize { get; }
    /// <summary>"qcow2" or "raw".</summary>
    public abstract string Format { get; }
    internal IImageFile File { get; }
    /// <summary>The disk beneath this one (a qcow2 backing image's own backing), or null.</summary>
    public BackingDisk? Backing { get; }

    /// <summary>Reads [offset, offset + destination.Length) of this disk; what lies past its end reads as zeros (QEMU's rule for a shorter backing file).</summary>
    public ValueTask ReadAsync(Memory<byte> destination, long offset, CancellationToken ct)
    {
        long inside = Math.Clamp(VirtualSize - offset, 0, destination.Length);
        if (inside < destination.Length) destination.Span[(int)inside..].Clear();
        return inside == 0 ? ValueTask.CompletedTask : ReadInsideAsync(destination[..(int)inside], offset, ct);
    }

    private protected abstract ValueTask ReadInsideAsync(Memory<byte> destination, long offset, CancellationToken ct);

    /// <summary>
    /// Appends the extents of [offset, offset + length) as <see cref="ExtentKind.Data"/> or
    /// <see cref="ExtentKind.Zero"/> (resolved through the whole chain beneath; past the end: zero).
    /// </summary>
    public async Task AddExtentsAsync(long offset, long length, List<ExtentRun> into, CancellationToken ct)
    {
        long inside = Math.Clamp(VirtualSize - offset, 0, length);
        if (inside > 0) await AddExtentsInsideAsync(offset, inside, into, ct).ConfigureAwait(false);
        if (inside < length) AddExtent(into, offset + inside, length - inside, ExtentKind.Zero);
    }

    private protected abstract Task AddExtentsInsideAsync(long offset, long length, List<ExtentRun> into, CancellationToken ct);

    /// <summary>Appends a run, merged with the last one when it continues it with the same kind.</summary>
    internal static void AddExtent(List<ExtentRun> runs, long start, long length, ExtentKind kind)
    {
        if (length <= 0) return;
        if (runs.Count > 0 && runs[^1].Kind == kind && runs[^1].Start + runs[^1].Length == start)
            runs[^1] = runs[^1] with { Length = runs[^1].Length + length };
        else
            runs.Add(new ExtentRun(start, length, kind));
    }

    /// <summary>Resolves unallocated runs of an image (this disk beneath it) into data and zeros, in order.</summary>
    internal async Task<List<ExtentRun>> ResolveAsync(IReadOnlyList<ExtentRun> runs, CancellationToken ct)
    {
        var resolved = new List<ExtentRun>(runs.Count);
        foreach (var run in runs)
        {
            if (run.Kind == ExtentKind.Unallocated) await AddExtentsAsync(run.Start, run.Length, resolved, ct).ConfigureAwait(false);
            else AddExtent(resolved, run.Start, run.Length, run.Kind);
        }
        return resolved;
    }
}

/// <summary>A raw file: its bytes are the disk; its holes (a sparse file's) read as zeros, as QEMU's file driver reports them.</summary>
internal sealed class RawBackingDisk(string fileName, IImageFile file) : BackingDisk(fileName, file.Length, file, null)
{
    public override string Format => "raw";

    private protected override ValueTask ReadInsideAsync(Memory<byte> destination, long offset, CancellationToken ct)
        => File.ReadAsync(destination, offset, ct);

    private protected override Task AddExtentsInsideAsync(long offset, long length, List<ExtentRun> into, CancellationToken ct)
    {
        long end = offset + length;
        if (File is not RandomAccessImageFile seekable)
        {
            AddExtent(into, offset, length, ExtentKind.Data);
            return Task.CompletedTask;
        }
        for (long o = offset; o < end;)
        {
            ct.ThrowIfCancellationRequested();
            long data = seekable.Seek(o, hole: false);
            if (data < 0 || data >= end)
            {
                AddExtent(into, o, end - o, ExtentKind.Zero);
                break;
            }
            AddExtent(into, o, data - o, ExtentKind.Zero);
            long hole = Math.Min(Math.Max(seekable.Seek(data, hole: true), data + 1), end);
            AddExtent(into, data, hole - data, ExtentKind.Data);
            o = hole;
        }
        return Task.CompletedTask;
    }
}
