using QcowActors.Actors.Io;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>Everything read from an image file at open, handed to its supervisor.</summary>
internal sealed class OpenedImage
{
    public required IImageFile File { get; init; }
    public required QcowHeader Header { get; init; }
    public required ulong[] L1 { get; init; }
    public required ulong[] RefcountTable { get; init; }
    /// <summary>Refcount blocks by table index.</summary>
    public required Dictionary<long, byte[]> RefcountBlocks { get; init; }
    public required long EndCluster { get; init; }
    public required List<long> FreeClusters { get; init; }
    public ImageRefusal? DataRefusal { get; init; }
    public ImageRefusal? WriteRefusal { get; init; }
    /// <summary>What open repaired (leaks reclaimed, refcounts rebuilt), for the log.</summary>
    public string? Repaired { get; init; }
}
