using QcowActors.Actors.Io;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>Every message to an image names it, so the store can become a shard region.</summary>
public interface IImageMessage
{
    string Image { get; }
}

// ---- Requests from the service (through the store) ----

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

/// <summary>Store to supervisor: flush, close the file and stop (passivation, delete, shutdown).</summary>
public sealed record CloseImage(string Image) : IImageMessage;

/// <summary>Test hook: makes the L2 actor of that table throw, to exercise supervision.</summary>
public sealed record CrashL2Table(string Image, long L1Index) : IImageMessage;

// ---- Replies ----

public sealed record ImageHandle(
    string Image,
    long VirtualSize,
    int Version,
    ClusterLayout Layout,
    IImageFile File,
    IoEpochGate Gate,
    ImageRefusal? DataRefusal,
    ImageRefusal? WriteRefusal,
    string? Backing,
    bool Dirty,
    L2Directory Directory,
    Akka.Actor.IActorRef Supervisor);

/// <summary>Why data (or writes) of an image are refused: the feature named in the 422.</summary>
public sealed record ImageRefusal(string Feature, string Detail);

/// <summary>A run of the virtual disk: HostOffset -1 = reads as zeros, else contiguous bytes at HostOffset.</summary>
public readonly record struct MappedRun(long VirtualOffset, long Length, long HostOffset)
{
    public bool IsZero => HostOffset < 0;
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
}

/// <summary>One cluster's part of a write: Length bytes at OffsetInCluster of the host cluster at HostCluster.</summary>
public readonly record struct ClusterWrite(long VirtualOffset, int Length, long HostCluster, int OffsetInCluster, ClusterFill Fill, long SourceHost);

public sealed record WritePlan(long PlanId, long L1Index, ClusterWrite[] Clusters)
{
    /// <summary>True when nothing needs publishing (every cluster written in place).</summary>
    public bool InPlaceOnly => PlanId == 0;
}

public sealed record WriteCommitted;

public sealed record ZeroDone;

public sealed record Flushed;

public enum ExtentKind { Data, Zero }

public readonly record struct ExtentRun(long Start, long Length, ExtentKind Kind);

public sealed record ExtentRuns(IReadOnlyList<ExtentRun> Runs);

// ---- Between the supervisor and its children ----

internal sealed record AllocateForPlan(long L1Index, long PlanId, int Count);
/// <summary>Fresh[k]: the cluster lies past everything ever written, so it already reads as zeros.</summary>
internal sealed record ClustersAllocated(long PlanId, long[] HostOffsets, bool[] Fresh);
internal sealed record AllocationFailed(long PlanId, Exception Cause);
/// <summary>Entries that pointed to these host clusters were replaced: decrement after the replacement is durable.</summary>
internal sealed record ReleaseClusters(long[] HostClusters);
internal sealed record RelocateTable(long NewOffset);
internal sealed record CollectL2(long FlushId);
/// <summary>Supervisor to L2 actor: stop if clean and idle (answer <see cref="L2Stopped"/>), else <see cref="L2StayAlive"/>.</summary>
internal sealed record StopL2Table(long L1Index);
internal sealed record L2Stopped(long L1Index);
internal sealed record L2StayAlive(long L1Index);
/// <summary>L2 actor to supervisor: the table was read from the file.</summary>
internal sealed record L2Loaded(long L1Index);
/// <summary>L2 actor to supervisor: the table could not be read; replace me.</summary>
internal sealed record L2LoadFailed(long L1Index);
internal sealed record L2Snapshot(long FlushId, long L1Index, long HostOffset, byte[]? Bytes);
internal sealed record IncrementRefcounts(long[] Clusters);
internal sealed record CollectRefcounts(long FlushId);
internal sealed record RefcountSnapshot(long FlushId, long TableIndex, long HostOffset, byte[]? Bytes);
internal sealed record ApplyDecrements(long FlushId, long[] Clusters);
internal sealed record DecrementsApplied(long FlushId, long[] Freed);
