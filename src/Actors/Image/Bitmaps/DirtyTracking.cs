namespace QcowActors.Actors.Image.Bitmaps;

/// <summary>
/// What requests mark after a write or zeroing: the bits of every enabled, consistent bitmap, for
/// the request's guest range rounded out to each granularity (QEMU marks exactly that; its internal
/// copy-on-write marks nothing). The supervisor publishes a new array whenever the set changes;
/// marking reads it once and sets bits with interlocked ORs: no lock, no message.
/// </summary>
public sealed class DirtyTracking
{
    private Format.DirtyBits[] _tracking = [];

    public void Mark(long offset, long length)
    {
        if (length <= 0) return;
        foreach (var bits in Volatile.Read(ref _tracking)) bits.Mark(offset, length);
    }

    internal void Publish(IEnumerable<PersistentBitmap> bitmaps)
        => Volatile.Write(ref _tracking, [.. bitmaps.Where(b => b.Enabled && b.Bits is not null).Select(b => b.Bits!)]);
}
