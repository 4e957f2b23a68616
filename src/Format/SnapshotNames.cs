using System.Text;

namespace QcowActors.Format;

/// <summary>
/// How snapshots are named and found, as QEMU does it: ids are decimal numbers, a new one is the
/// largest numeric id plus one (QEMU's find_new_snapshot_id); a lookup tries the id first, then the
/// name (bdrv_snapshot_find). Names are unique here, and never all digits, so "id or name" is never ambiguous.
/// </summary>
public static class SnapshotNames
{
    /// <summary>QEMU keeps a snapshot name in a 256-byte buffer with its NUL (QEMUSnapshotInfo.name).</summary>
    public const int MaxNameBytes = 255;

    /// <summary>Null when the name is usable, else why not.</summary>
    public static string? Validate(string? name)
    {
        if (string.IsNullOrEmpty(name)) return "a snapshot needs a non-empty \"name\"";
        int bytes = Encoding.UTF8.GetByteCount(name);
        if (bytes > MaxNameBytes) return $"snapshot name is {bytes} bytes of UTF-8; at most {MaxNameBytes} are allowed";
        foreach (char c in name)
        {
            if (char.IsControl(c)) return "a snapshot name may not contain control characters";
        }
        if (name.All(char.IsAsciiDigit)) return $"snapshot name '{name}' is all digits, which reads as a snapshot id; add a letter";
        if (name != name.Trim()) return "a snapshot name may not start or end with white space";
        return null;
    }

    /// <summary>One more than the largest numeric id (ids that are not numbers count as 0), as QEMU picks it.</summary>
    public static string NextId(IEnumerable<SnapshotEntry> entries)
    {
        ulong max = 0;
        foreach (var e in entries)
            if (ulong.TryParse(e.Id, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong id) && id > max) max = id;
        return (max + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The snapshot with that id, else the only one with that name; null when none. A name two snapshots share (made by other tools) matches neither.</summary>
    public static SnapshotEntry? Find(IReadOnlyList<SnapshotEntry> entries, string idOrName)
    {
        foreach (var e in entries)
            if (e.Id == idOrName) return e;
        SnapshotEntry? found = null;
        foreach (var e in entries)
        {
            if (e.Name != idOrName) continue;
            if (found is not null) return null;
            found = e;
        }
        return found;
    }

    /// <summary>True when two snapshots carry the name (possible in images other tools made).</summary>
    public static bool IsAmbiguous(IReadOnlyList<SnapshotEntry> entries, string name)
        => entries.All(e => e.Id != name) && entries.Count(e => e.Name == name) > 1;
}
