namespace QcowActors.Actors.Service;

/// <summary>Configuration section "Storage".</summary>
public sealed class StoreOptions
{
    public const string Section = "Storage";
    /// <summary>Directory holding {name}.qcow2 files. Default ./data.</summary>
    public string Directory { get; set; } = "data";
    /// <summary>Close an image after this long without requests.</summary>
    public TimeSpan PassivateAfter { get; set; } = TimeSpan.FromMinutes(2);
    /// <summary>L2 tables kept in memory per open image (least recently used clean ones are dropped beyond it).</summary>
    public long L2CacheBytesPerImage { get; set; } = 128L * 1024 * 1024;
    /// <summary>L2 tables kept in memory over all open images.</summary>
    public long L2CacheBytesTotal { get; set; } = 256L * 1024 * 1024;
    /// <summary>Refcount blocks kept in memory per open image (clean ones beyond it are dropped after a flush and read again when needed).</summary>
    public long RefcountCacheBytesPerImage { get; set; } = 32L * 1024 * 1024;
    /// <summary>Refcount blocks kept in memory over all open images.</summary>
    public long RefcountCacheBytesTotal { get; set; } = 128L * 1024 * 1024;
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
