namespace QcowActors.Format;

/// <summary>What one bitmap table entry says about its cluster of bitmap data.</summary>
public enum BitmapTableEntryKind
{
    /// <summary>Offset 0, bit 0 clear: the cluster reads as all zeros.</summary>
    Zeros,
    /// <summary>Offset 0, bit 0 set: the cluster reads as all ones.</summary>
    Ones,
    /// <summary>The data is in the host cluster at Offset.</summary>
    Data,
}

/// <summary>A decoded bitmap table entry (qcow2.txt "Bitmap table"); Offset is 0 unless Kind is Data.</summary>
public readonly record struct BitmapTableEntry(BitmapTableEntryKind Kind, long Offset)
{
    public static BitmapTableEntry Zeros => new(BitmapTableEntryKind.Zeros, 0);
    public static BitmapTableEntry Ones => new(BitmapTableEntryKind.Ones, 0);
    public static BitmapTableEntry Data(long offset) => new(BitmapTableEntryKind.Data, offset);

    public ulong ToRaw() => BitmapTable.Encode(this);
}
