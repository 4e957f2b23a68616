namespace QcowActors.Actors.Image;

/// <summary>
/// How many bytes of L2 tables may stay in memory: per image, and for the whole process (shared
/// by every image supervisor; only a counter, each image evicts its own tables).
/// </summary>
public sealed class L2CacheBudget(long perImageBytes, long totalBytes)
{
    private long _used;

    public long PerImageBytes { get; } = perImageBytes;
    public long TotalBytes { get; } = totalBytes;
    public long UsedBytes => Interlocked.Read(ref _used);
    public bool OverTotal => UsedBytes > TotalBytes;

    public void Add(long bytes) => Interlocked.Add(ref _used, bytes);
}
