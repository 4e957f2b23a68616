namespace QcowActors.Api.Streaming;

/// <summary>
/// Where the next write chunk of an upload ends. Chunks end on <see cref="Alignment"/> boundaries
/// of the disk offset when the chunk size allows it, so that after a misaligned first chunk every
/// write covers whole clusters (no copy-on-write of a partial cluster at both ends of each write).
/// </summary>
internal static class ChunkPlanner
{
    public const int Alignment = 1024 * 1024;

    /// <summary>The end (exclusive) of the chunk starting at <paramref name="position"/>, never past <paramref name="limit"/>.</summary>
    public static long NextEnd(long position, int maxChunk, long limit)
    {
        if (position >= limit)
            return limit;
        long end = position + Math.Min(maxChunk, limit - position);
        if (end == limit)
            return limit;
        long aligned = end - end % Alignment;
        return aligned > position ? aligned : end;
    }
}
