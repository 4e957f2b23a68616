namespace QcowActors.Actors.Image;

/// <summary>
/// How many bytes of cached metadata (L2 tables, or refcount blocks) may stay in memory: per image,
/// and for the whole process (shared by every image supervisor; only a counter, each image evicts its own).
/// </summary>
public sealed class CacheBudget(long perImageBytes, long totalBytes)
{
    private long _used;

    public long PerImageBytes { get; } = perImageBytes;
    public long TotalBytes { get; } = totalBytes;
    public long UsedBytes => Interlocked.Read(ref _used);
    public bool OverTotal => UsedBytes > TotalBytes;

    public void Add(long bytes) => Interlocked.Add(ref _used, bytes);
}
