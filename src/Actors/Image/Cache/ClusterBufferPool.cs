using System.Collections.Concurrent;

namespace QcowActors.Actors.Image;

/// <summary>
/// Spare cluster-sized buffers of tables and blocks that left the cache, kept for the next ones
/// so metadata memory is reused rather than churned through the large-object heap. The spare
/// bytes stay within what the budget has not reserved (<see cref="MetadataBudget"/>), so
/// reserved plus spare never pass its total.
/// </summary>
internal sealed class ClusterBufferPool
{
    private readonly ConcurrentDictionary<int, ConcurrentBag<byte[]>> _spare = new();
    private long _spareBytes;

    public long SpareBytes => Interlocked.Read(ref _spareBytes);

    /// <summary>A buffer of exactly <paramref name="size"/> bytes; its content is undefined unless <paramref name="zeroed"/>.</summary>
    public byte[] Rent(int size, bool zeroed)
    {
        if (_spare.TryGetValue(size, out var bag) && bag.TryTake(out var buffer))
        {
            Interlocked.Add(ref _spareBytes, -size);
            if (zeroed) Array.Clear(buffer);
            return buffer;
        }
        return zeroed ? new byte[size] : GC.AllocateUninitializedArray<byte>(size);
    }

    /// <summary>Keeps the buffer if the spare bytes stay within <paramref name="room"/>; else it is left to the GC.</summary>
    public void Return(byte[] buffer, long room)
    {
        if (Interlocked.Add(ref _spareBytes, buffer.Length) > room)
        {
            Interlocked.Add(ref _spareBytes, -buffer.Length);
            return;
        }
        _spare.GetOrAdd(buffer.Length, _ => []).Add(buffer);
    }

    /// <summary>Drops spare buffers until they take at most <paramref name="room"/> bytes.</summary>
    public void TrimTo(long room)
    {
        room = Math.Max(0, room);
        if (Interlocked.Read(ref _spareBytes) <= room) return;
        foreach (var bag in _spare.Values)
        {
            while (Interlocked.Read(ref _spareBytes) > room && bag.TryTake(out var dropped))
                Interlocked.Add(ref _spareBytes, -dropped.Length);
        }
    }
}
