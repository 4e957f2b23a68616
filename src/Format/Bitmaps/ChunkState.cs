namespace QcowActors.Format;

/// <summary>
/// What one cluster of bitmap data holds, counting only bits inside the disk: Zeros and Ones need no
/// data cluster (a bitmap table entry of 0 or 1), Mixed does.
/// </summary>
public enum ChunkState
{
    Zeros,
    Ones,
    Mixed,
}
