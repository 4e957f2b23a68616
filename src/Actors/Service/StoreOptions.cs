namespace QcowActors.Actors.Service;

/// <summary>Configuration section "Storage".</summary>
public sealed class StoreOptions
{
    public const string Section = "Storage";
    /// <summary>Directory holding {name}.qcow2 files. Default ./data.</summary>
    public string Directory { get; set; } = "data";
    /// <summary>Close an image once no request has been in flight for this long.</summary>
    public TimeSpan PassivateAfter { get; set; } = TimeSpan.FromMinutes(2);
    /// <summary>Metadata (L1 and refcount tables, L2 tables, refcount blocks) one open image may hold in memory.</summary>
    public long MetadataCacheBytesPerImage { get; set; } = 160L * 1024 * 1024;
    /// <summary>Metadata all open images may hold in memory together.</summary>
    public long MetadataCacheBytesTotal { get; set; } = 384L * 1024 * 1024;
    /// <summary>How long a request waits for room in the metadata cache before it answers 503 with Retry-After.</summary>
    public TimeSpan MetadataCacheWaitLimit { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>Images open at once on this node; beyond it the least recently used idle one is closed.</summary>
    public int MaxOpenImages { get; set; } = 1000;
    /// <summary>
    /// How long a read in flight may go on once its image starts closing (DELETE, POST close, a
    /// snapshot or resize, a full store): after it, the read is cut (an error to its client) so the
    /// close does not wait on a slow reader without bound. Hand-off to another node cuts sooner
    /// (the owner's lease drain).
    /// </summary>
    public TimeSpan CloseReadLimit { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>
    /// How long the store waits for its file system to list the images, check an image's file
    /// before opening it, or create one; after it the request answers 503 and other images keep
    /// being served (those calls never run on an actor's thread).
    /// </summary>
    public TimeSpan FileSystemWaitLimit { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>How long a request waits for an image actor's answer.</summary>
    public TimeSpan AskTimeout { get; set; } = TimeSpan.FromSeconds(120);
    /// <summary>Largest write handed to the engine at once (bytes of a PUT body buffered per request).</summary>
    /// <remarks>
    /// 1 MiB: the chunk is copied from the request and then into the page cache; at 1 MiB it is
    /// still in the CPU's cache for the second copy (8 MiB uploads ran at ~0.75x nginx's DAV PUT,
    /// 1 MiB at ~0.9x), and writes of 1 MiB still start their write-back at once.
    /// </remarks>
    public int MaxWriteChunk { get; set; } = 1024 * 1024;
}
