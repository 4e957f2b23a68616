namespace QcowActors.Format;

/// <summary>Flags of a bitmap directory entry (qcow2.txt "Bitmap directory"); bits 3..31 are reserved.</summary>
[Flags]
public enum BitmapFlags : uint
{
    None = 0,
    /// <summary>The bitmap was not saved correctly: its data (and size) may be stale. A writer sets it while it keeps the bitmap in memory.</summary>
    InUse = 1,
    /// <summary>Enabled: every write to the disk must be recorded in the bitmap.</summary>
    Auto = 2,
    /// <summary>Unknown extra data may be kept as is and the bitmap still used.</summary>
    ExtraDataCompatible = 4,
}
