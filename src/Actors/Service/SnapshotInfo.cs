using System.Globalization;
using QcowActors.Format;

namespace QcowActors.Actors.Service;

/// <summary>
/// One internal snapshot as served by /images/{name}/snapshots. Date is the entry's seconds and
/// nanoseconds as ISO 8601 UTC; VmClockNanoseconds is the guest clock QEMU recorded (0 for disk-only snapshots).
/// </summary>
public sealed record SnapshotInfo(string Id, string Name, long VirtualSize, long VmStateSize, string Date, long VmClockNanoseconds, long L1Size)
{
    public static SnapshotInfo From(SnapshotEntry e, long defaultDiskSize)
    {
        var at = DateTimeOffset.FromUnixTimeSeconds(e.DateSeconds).UtcDateTime;
        string date = string.Create(CultureInfo.InvariantCulture, $"{at:yyyy-MM-dd'T'HH:mm:ss}.{Math.Min(e.DateNanoseconds, 999_999_999u):D9}Z");
        return new SnapshotInfo(e.Id, e.Name, e.DiskSize >= 0 ? e.DiskSize : defaultDiskSize, (long)Math.Min(e.VmStateSize, long.MaxValue),
            date, (long)Math.Min(e.VmClockNanoseconds, long.MaxValue), e.L1Size);
    }
}
