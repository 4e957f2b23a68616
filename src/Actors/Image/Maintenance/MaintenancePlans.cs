using System.Buffers;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image.Maintenance;

/// <summary>
/// Each operation as references (a <see cref="RewriteRequest"/>), after its own checks. Create: the
/// old active L1 becomes the snapshot's L1 table and the active tree is referenced once more.
/// Delete: the snapshot's L1 and tree lose a reference. Revert: the snapshot's tree becomes the active
/// one (referenced once more), the old active tree loses its reference. Resize: the same tree under an
/// L1 of the new length; tables wholly past a smaller end lose their reference.
/// </summary>
internal sealed class MaintenancePlans(string image, IImageFile file, QcowHeader header, ulong[] l1, IReadOnlyList<SnapshotEntry> snapshots)
{
    public (RewriteRequest Request, SnapshotEntry Created) Create(string name, DateTimeOffset now)
    {
        if (SnapshotNames.Validate(name) is { } problem) throw new ImageException(ImageError.InvalidArgument, problem);
        if (snapshots.Any(s => s.Name == name))
            throw new ImageException(ImageError.AlreadyExists, $"image '{image}' already has a snapshot named '{name}'");
        if (snapshots.Count >= QcowLimits.MaxSnapshots)
            throw new ImageException(ImageError.Conflict, $"image '{image}' has {snapshots.Count} snapshots, the most QEMU allows");
        long unixNanos = (now.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;
        var created = new SnapshotEntry(SnapshotNames.NextId(snapshots), name, header.L1TableOffset, header.L1Size, header.Size)
        {
            DateSeconds = (uint)(unixNanos / 1_000_000_000),
            DateNanoseconds = (uint)(unixNanos % 1_000_000_000),
            VmClockNanoseconds = 0,
            VmStateSize = 0,
            Icount = ulong.MaxValue,
        };
        var request = new RewriteRequest
        {
            NewSize = header.Size,
            NewActiveL1 = (ulong[])l1.Clone(),
            ActiveTreeAdded = true,
            OldActiveL1Kept = true,
            Snapshots = [.. snapshots, created],
        };
        return (request, created);
    }

    public (RewriteRequest Request, SnapshotEntry Deleted) Delete(string idOrName)
    {
        var deleted = Find(idOrName);
        var request = new RewriteRequest
        {
            NewSize = header.Size,
            NewActiveL1 = (ulong[])l1.Clone(),
            ActiveTreeAdded = false,
            Snapshots = snapshots.Where(s => !ReferenceEquals(s, deleted)).ToList(),
            Deleted = deleted,
        };
        return (request, deleted);
    }

    public async Task<RewriteRequest> RevertAsync(string idOrName, CancellationToken ct)
    {
        var snapshot = Find(idOrName);
        long size = snapshot.DiskSize >= 0 ? snapshot.DiskSize : header.Size;
        var snapL1 = await ImageOpener.ReadTableAsync(file, snapshot.L1TableOffset, snapshot.L1Size, ct).ConfigureAwait(false);
        var active = new ulong[Math.Max(snapshot.L1Size, header.Layout.L1EntriesFor(size))];
        snapL1.CopyTo(active, 0);
        return new RewriteRequest
        {
            NewSize = size,
            NewActiveL1 = active,
            ActiveTreeAdded = true,
            OldActiveTreeDropped = true,
            Snapshots = snapshots,
        };
    }

    public async Task<RewriteRequest> ResizeAsync(long size, CancellationToken ct)
    {
        var layout = header.Layout;
        if (ResizeRules.CheckSize(size, layout) is { } problem) throw new ImageException(ImageError.InvalidArgument, problem);
        if (snapshots.Count > 0 && header.Version < 3)
            throw new ImageException(ImageError.Conflict, $"image '{image}' is a version 2 (compat 0.10) image with snapshots, which cannot be resized (as in QEMU); delete its snapshots first");
        long entries = layout.L1EntriesFor(size);
        var dropped = new List<long>();
        if (size < header.Size)
        {
            long end = layout.RoundUpToCluster(size);
            var table = ArrayPool<byte>.Shared.Rent(layout.ClusterSize);
            try
            {
                for (long i = layout.L1Index(end); i < l1.Length; i++)
                {
                    var e = L1Entry.From(l1[i]);
                    if (e.IsUnallocated) continue;
                    await file.ReadAsync(table.AsMemory(0, layout.ClusterSize), e.L2Offset, ct).ConfigureAwait(false);
                    long at = ResizeRules.FirstAllocatedFrom(table.AsSpan(0, layout.ClusterSize), layout.L2TableStart(i), end, layout);
                    if (at >= 0)
                        throw new ImageException(ImageError.Conflict,
                            $"image '{image}' cannot shrink to {size} bytes: the cluster at virtual offset {at} holds data past the new end; zero it first (PATCH /images/{image}/data op zero)");
                    if (i >= entries) dropped.Add(e.L2Offset);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(table);
            }
        }
        var active = new ulong[entries];
        Array.Copy(l1, active, Math.Min(l1.Length, entries));
        return new RewriteRequest
        {
            NewSize = size,
            NewActiveL1 = active,
            ActiveTreeAdded = false,
            DroppedTables = [.. dropped],
            Snapshots = snapshots,
        };
    }

    private SnapshotEntry Find(string idOrName)
    {
        if (SnapshotNames.IsAmbiguous(snapshots, idOrName))
            throw new ImageException(ImageError.Conflict, $"image '{image}' has several snapshots named '{idOrName}'; address one by its id");
        return SnapshotNames.Find(snapshots, idOrName)
            ?? throw new ImageException(ImageError.NotFound, $"image '{image}' has no snapshot with id or name '{idOrName}'");
    }
}
