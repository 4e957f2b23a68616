using QcowActors.Actors.Backing;
using QcowActors.Actors.Io;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>Everything read from an image file at open, handed to its supervisor.</summary>
internal sealed class OpenedImage
{
    public required IImageFile File { get; init; }
    public required QcowHeader Header { get; init; }
    /// <summary>The chain beneath an overlay (opened shared), or null; the image releases it when it closes.</summary>
    public BackingDisk? Backing { get; init; }
    public required ulong[] L1 { get; init; }
    /// <summary>The refcount table in its on-disk form.</summary>
    public required byte[] RefcountTable { get; init; }
    /// <summary>Refcount blocks kept in memory (the first ones), by table index; their bytes are in <see cref="ReservedBytes"/>.</summary>
    public required Dictionary<long, byte[]> RefcountBlocks { get; init; }
    /// <summary>The file's length in clusters: allocation at the end starts here.</summary>
    public required long EndCluster { get; init; }
    public required FreeClusters Free { get; init; }
    public required MetadataClusters Fences { get; init; }
    /// <summary>Bytes reserved in the metadata budget for this image: L1, refcount table, kept blocks.</summary>
    public required long ReservedBytes { get; init; }
    public ImageRefusal? DataRefusal { get; init; }
    public ImageRefusal? WriteRefusal { get; init; }
    /// <summary>Metadata whose counts or placement are corrupt (e.g. a table with refcount 0): the first write marks the image corrupt.</summary>
    public string? Violation { get; init; }
    /// <summary>What open repaired (leaks reclaimed, refcounts rebuilt), for the log.</summary>
    public string? Repaired { get; init; }
    /// <summary>The persistent bitmaps (their bits' memory is in <see cref="ReservedBytes"/>); consistent ones are in use on disk now if the image is writable.</summary>
    public List<Bitmaps.PersistentBitmap> Bitmaps { get; init; } = [];
    /// <summary>The clusters of the bitmap directory as found.</summary>
    public long[] BitmapDirectory { get; init; } = [];
}
