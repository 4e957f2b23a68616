using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>A persistent bitmap as the API describes it. DirtyBytes: the bytes its set bits cover (0 when inconsistent).</summary>
public sealed record BitmapInfo(string Name, long Granularity, bool Enabled, bool Consistent, long DirtyBytes);

/// <summary>Reply: <see cref="BitmapList"/>.</summary>
public sealed record ListBitmaps(string Image) : IImageMessage;
public sealed record BitmapList(IReadOnlyList<BitmapInfo> Bitmaps);

/// <summary>Adds a bitmap and makes the directory naming it (in use) durable. Reply: <see cref="BitmapInfo"/>.</summary>
public sealed record AddBitmap(string Image, string Name, int GranularityBits, bool Enabled) : IImageMessage;

/// <summary>Removes a bitmap from the directory, durably. Reply: <see cref="BitmapInfo"/> (what it was).</summary>
public sealed record RemoveBitmap(string Image, string Name) : IImageMessage;

/// <summary>Enables or disables a bitmap, and/or clears its bits (stored at close). Reply: <see cref="BitmapInfo"/>.</summary>
public sealed record ChangeBitmap(string Image, string Name, bool? Enabled, bool Clear) : IImageMessage;

/// <summary>The bitmap's bits for a read of its dirty extents. Reply: <see cref="BitmapBits"/>.</summary>
public sealed record GetBitmapBits(string Image, string Name) : IImageMessage;
/// <summary>Bits: read from any thread; null when the bitmap is inconsistent. (No count: a plain existence check costs nothing.)</summary>
public sealed record BitmapBits(DirtyBits? Bits);

/// <summary>Every bitmap becomes fully dirty (before a snapshot revert replaces the disk). Reply: <see cref="BitmapList"/>.</summary>
public sealed record MarkBitmapsDirty(string Image) : IImageMessage;
