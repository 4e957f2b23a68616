namespace QcowActors.Actors.Image;

/// <summary>Every message to an image names it, so the store can route it and logs can say which.</summary>
public interface IImageMessage
{
    string Image { get; }
}

// ---- Requests: AttachImage through the store, the rest straight to the image's supervisor (ImageHandle) ----

/// <summary>Reply: <see cref="ImageHandle"/>: what a request needs to move bytes itself.</summary>
public sealed record AttachImage(string Image) : IImageMessage;

/// <summary>Maps [Offset, Offset+Length) inside one L2 table's range. Reply: <see cref="RangeMapping"/>.</summary>
public sealed record MapRange(string Image, long Offset, long Length) : IImageMessage;

/// <summary>Prepares a write inside one L2 table's range. Reply: <see cref="WritePlan"/>.</summary>
public sealed record PrepareWrite(string Image, long Offset, long Length) : IImageMessage;

/// <summary>The plan's data is in the file: publish its L2 entries. Reply: <see cref="WriteCommitted"/>.</summary>
public sealed record CommitWrite(string Image, long L1Index, long PlanId) : IImageMessage;

/// <summary>The plan's data could not be written: give its clusters back. No reply.</summary>
public sealed record AbortWrite(string Image, long L1Index, long PlanId) : IImageMessage;

/// <summary>Whole clusters inside one L2 table's range become zero (or released). Reply: <see cref="ZeroDone"/>.</summary>
public sealed record ZeroClusters(string Image, long Offset, long Length) : IImageMessage;

/// <summary>Makes every write committed before it durable. Reply: <see cref="Flushed"/>.</summary>
public sealed record FlushImage(string Image) : IImageMessage;

/// <summary>Extents of one L2 table's range. Reply: <see cref="ExtentRuns"/>.</summary>
public sealed record GetL2Extents(string Image, long L1Index) : IImageMessage;

/// <summary>Store to supervisor: flush, close the file and stop (idle, delete, shutdown, corruption).</summary>
public sealed record CloseImage(string Image) : IImageMessage;

/// <summary>A request found a write about to land on metadata (<see cref="FenceViolationException"/>): mark the image corrupt. No reply.</summary>
internal sealed record ReportCorruption(string Image, string Detail) : IImageMessage;

/// <summary>Test hook: makes the L2 actor of that table throw, to exercise supervision.</summary>
public sealed record CrashL2Table(string Image, long L1Index) : IImageMessage;

// ---- Replies ----

/// <summary>Why data (or writes) of an image are refused: the feature named in the problem (422, or 409 when Conflict: the image is another's backing).</summary>
public sealed record ImageRefusal(string Feature, string Detail, bool Conflict = false);

/// <summary>
/// A run of the virtual disk: HostOffset <see cref="ZeroHost"/> = reads as zeros (zero flag or
/// bits); <see cref="UnallocatedHost"/> = nothing in this image: the backing disk's bytes, zeros
/// without one; Compressed != 0 = part of one compressed cluster (Compressed is its L2 entry,
/// HostOffset where the run starts in the inflated cluster); else contiguous bytes at HostOffset.
/// </summary>
public readonly record struct MappedRun(long VirtualOffset, long Length, long HostOffset, ulong Compressed = 0)
{
    public const long ZeroHost = -1, UnallocatedHost = -2;
    public bool IsZero => HostOffset == ZeroHost;
    public bool IsUnallocated => HostOffset == UnallocatedHost;
    /// <summary>Zeros here or a backing disk's bytes: no host bytes of this image.</summary>
    public bool IsHostless => HostOffset < 0 && Compressed == 0;
    public bool IsCompressed => Compressed != 0;
}

public sealed record RangeMapping(IReadOnlyList<MappedRun> Runs);

public enum ClusterFill
{
    /// <summary>The write covers what matters: write the data only (in place, or the whole new cluster).</summary>
    None,
    /// <summary>New cluster, partial write: the rest must be zeros.</summary>
    Zeros,
    /// <summary>New cluster, partial write: the rest comes from SourceHost (copy-on-write).</summary>
    CopyFrom,
    /// <summary>New cluster, partial write: the rest comes from a compressed cluster, SourceHost holding its L2 entry.</summary>
    Inflate,
}

/// <summary>
/// One cluster's part of a write: Length bytes at OffsetInCluster of the host cluster at
/// HostCluster. With a Fill, bytes [FillFrom, FillTo) of the cluster are written: the data and,
/// around it, what Fill says (from SourceHost, whose subclusters outside SourceAllocated read as zeros),
/// except the subclusters in FromBacking (all of the fill: uint.MaxValue), which the backing disk fills.
/// </summary>
public readonly record struct ClusterWrite(long VirtualOffset, int Length, long HostCluster, int OffsetInCluster, ClusterFill Fill, long SourceHost,
    int FillFrom, int FillTo, uint SourceAllocated, uint FromBacking = 0);

public sealed record WritePlan(long PlanId, long L1Index, ClusterWrite[] Clusters)
{
    /// <summary>True when nothing needs publishing (every cluster written in place).</summary>
    public bool InPlaceOnly => PlanId == 0;
}

public sealed record WriteCommitted;

public sealed record ZeroDone;

public sealed record Flushed;

/// <summary>Unallocated: nothing in this image (the backing disk's extents, or zeros without one).</summary>
public enum ExtentKind { Data, Zero, Unallocated }

public readonly record struct ExtentRun(long Start, long Length, ExtentKind Kind);

public sealed record ExtentRuns(IReadOnlyList<ExtentRun> Runs);

// ---- Between the supervisor and its children ----

internal sealed record AllocateForPlan(long L1Index, long PlanId, int Count);
/// <summary>Fresh[k]: the cluster lies past the end of the file as opened, so it already reads as zeros.</summary>
internal sealed record ClustersAllocated(long PlanId, long[] HostOffsets, bool[] Fresh);
internal sealed record AllocationFailed(long PlanId, Exception Cause);
/// <summary>Entries that pointed to these host clusters were replaced: decrement after the replacement is durable.</summary>
internal sealed record ReleaseClusters(long[] HostClusters);
/// <summary>The table was copied to a new cluster (it was shared with a snapshot); the next flush writes it whole there.</summary>
internal sealed record RelocateTable(long NewOffset);
/// <summary>Supervisor to L2 actor: a buffer reserved for the compact table to become dense in, before a change.</summary>
internal sealed record DensifyL2(byte[] Buffer);
/// <summary>L2 actor to supervisor: the table went from clean to dirty.</summary>
internal sealed record L2Dirtied(long L1Index);
/// <summary>L2 actor to supervisor: the table was read from the file; Bytes = what it holds (compact or a cluster).</summary>
internal sealed record L2Loaded(long L1Index, long Bytes);
/// <summary>L2 actor to supervisor: the table could not be read; replace me.</summary>
internal sealed record L2LoadFailed(long L1Index);
/// <summary>Supervisor to L2 actor: stop if clean and idle (answer <see cref="L2Stopped"/>), else <see cref="L2StayAlive"/>.</summary>
internal sealed record StopL2Table(long L1Index);
internal sealed record L2Stopped(long L1Index);
internal sealed record L2StayAlive(long L1Index);

internal sealed record IncrementRefcounts(long[] Clusters, long FreshFrom);
internal sealed record ApplyDecrements(long FlushId, long[] Clusters);
internal sealed record DecrementsApplied(long FlushId, long TableIndex, long[] Freed);

/// <summary>Flush to a table or block: if dirty, hold every change until <see cref="Thaw"/> and answer <see cref="Frozen"/> with the bytes to write.</summary>
internal sealed record Freeze(long FlushId);
/// <summary>Buffer null = it was clean (nothing to write, not frozen). Otherwise each range [From, To) of Buffer goes to HostOffset + From.</summary>
internal sealed record Frozen(long FlushId, CacheKey Key, long HostOffset, byte[]? Buffer, IReadOnlyList<(int From, int To)> Ranges);
/// <summary>The flush is done with the frozen bytes; Written = false: they are dirty again.</summary>
internal sealed record Thaw(long FlushId, bool Written);
