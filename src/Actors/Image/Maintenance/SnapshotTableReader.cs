using QcowActors.Actors.Io;
using QcowActors.Format;

namespace QcowActors.Actors.Image.Maintenance;

/// <summary>Reads the snapshot table, growing its buffer only as far as the table turns out to reach (at most QEMU's 64 MiB).</summary>
internal static class SnapshotTableReader
{
    private const long MaxTableBytes = 64L << 20;

    public static async Task<(IReadOnlyList<SnapshotEntry> Entries, long ByteLength)> ReadAsync(IImageFile file, long offset, uint count, int version, CancellationToken ct)
    {
        if (count == 0) return ([], 0);
        long available = Math.Max(0, Math.Min(file.Length - offset, MaxTableBytes));
        long size = Math.Min(available, 64 * 1024);
        while (true)
        {
            var buffer = new byte[size];
            await file.ReadAsync(buffer, offset, ct).ConfigureAwait(false);
            try
            {
                return SnapshotTable.Parse(buffer, count, version);
            }
            catch (QcowFormatException) when (size < available)
            {
                size = Math.Min(available, size * 4); // cut off by our buffer, not by the file: read more
            }
        }
    }
}
