using QcowActors.Format;

namespace QcowActors.Actors.Image.Bitmaps;

/// <summary>
/// The image's persistent bitmaps as the supervisor owns them: the list (directory order), what
/// requests mark (<see cref="Tracking"/>), and the clusters the stored directory holds. It plans
/// directory rewrites (<see cref="Plan"/>) and takes them in (<see cref="Commit"/>); the supervisor
/// allocates, fences, runs the I/O and flushes. Used on the supervisor's thread only.
/// </summary>
internal sealed class BitmapKeeper
{
    private readonly ClusterLayout _layout;
    private readonly long _diskSize;
    private long[] _directoryClusters;

    public BitmapKeeper(ClusterLayout layout, long diskSize, List<PersistentBitmap> bitmaps, long[] directoryClusters)
    {
        _layout = layout;
        _diskSize = diskSize;
        All = bitmaps;
        _directoryClusters = directoryClusters;
        Tracking.Publish(All);
    }

    public List<PersistentBitmap> All { get; }
    public DirtyTracking Tracking { get; } = new();

    public PersistentBitmap? Find(string name) => All.Find(b => b.Name == name);

    /// <summary>Whether a close has anything to store: some bitmap whose bits must reach the file.</summary>
    public bool NeedsStoreAtClose => All.Exists(b => b.Consistent);

    /// <summary>Publishes who tracks writes (after an add, remove or enable).</summary>
    public void Changed() => Tracking.Publish(All);

    /// <summary>
    /// A rewrite of the directory listing <see cref="All"/>: at close every consistent bitmap gets a
    /// new table holding its bits; while open only bitmaps never stored do (added since), and
    /// <paramref name="removed"/> gives its clusters back.
    /// </summary>
    public BitmapStorePlan Plan(bool closing, PersistentBitmap? removed = null)
    {
        int cs = _layout.ClusterSize;
        var tables = new List<BitmapStorePlan.NewTable>();
        var release = new List<long>(_directoryClusters);
        if (removed is not null) release.AddRange(removed.StoredClusters);
        foreach (var b in All)
        {
            if (!b.Consistent || (!closing && b.Stored is not null)) continue;
            int chunks = b.Bits!.ChunkCount(cs);
            var states = new ChunkState[chunks];
            for (int k = 0; k < chunks; k++) states[k] = b.Bits.StateOf(k, cs);
            tables.Add(new BitmapStorePlan.NewTable(b, states));
            release.AddRange(b.StoredClusters);
        }
        return new BitmapStorePlan(_layout, closing, [.. All], tables, [.. release]);
    }

    /// <summary>The plan's directory is what the header names now: each bitmap remembers where it is stored.</summary>
    public void Commit(BitmapStorePlan plan)
    {
        _directoryClusters = plan.DirectoryClusters;
        for (int i = 0; i < plan.Bitmaps.Count; i++)
        {
            var b = plan.Bitmaps[i];
            b.Stored = plan.Directory[i];
            if (plan.Tables.Find(t => t.Bitmap == b) is { } t) b.StoredClusters = [.. t.Clusters];
        }
    }

    /// <summary>
    /// Puts the extension in the header: in place when it is there (same size, so only its own bytes
    /// change), else after the other extensions, so none of them moves (a torn header write then
    /// leaves the old extensions intact) — only the backing file name, stored after them, does.
    /// </summary>
    public static void SetExtension(QcowHeader header, BitmapsExtension extension)
    {
        int i = header.Extensions.FindIndex(e => e.Type == HeaderExtensionType.Bitmaps);
        if (i >= 0) header.Extensions[i] = extension.ToExtension();
        else header.Extensions.Add(extension.ToExtension());
        header.AutoclearFeatures |= FeatureBits.AutoclearBitmaps;
    }

    /// <summary>What a request that needs an inconsistent bitmap's bits answers (409).</summary>
    public static Service.ImageException Inconsistent(string image, string bitmap)
        => new(Service.ImageError.Conflict, $"bitmap '{bitmap}' of image '{image}' is inconsistent: the image was not closed cleanly while it tracked "
            + "writes, so its bits cannot be trusted; take a full backup and delete it");

    /// <summary>Bytes of memory a new bitmap of this granularity holds.</summary>
    public long MemoryFor(int granularityBits) => PersistentBitmap.MemoryFor(_diskSize, granularityBits);

    public PersistentBitmap Add(string name, int granularityBits, bool enabled)
    {
        var b = new PersistentBitmap(name, granularityBits, enabled, new DirtyBits(_diskSize, granularityBits), []);
        All.Add(b);
        Changed();
        return b;
    }
}
