namespace QcowActors.Format;

/// <summary>What kind of problem a format check found, so callers can map it to a status once.</summary>
public enum QcowProblem
{
    /// <summary>The bytes are not a valid QCOW2 image (bad magic, table outside the file, ...).</summary>
    Invalid,
    /// <summary>A valid image using a feature this build does not implement (names it in Feature).</summary>
    Unsupported,
    /// <summary>A requested size or parameter exceeds a QEMU limit (L1 over 32 MiB, ...).</summary>
    LimitExceeded,
}

/// <summary>
/// A format validation failure naming the offending field and value, e.g.
/// "l1_size 2147483647 exceeds the 32 MiB limit for 64 KiB clusters".
/// </summary>
public sealed class QcowFormatException(QcowProblem problem, string field, string message, string? feature = null)
    : Exception(message)
{
    public QcowProblem Problem { get; } = problem;
    /// <summary>The spec's name of the field at fault (e.g. "cluster_bits").</summary>
    public string Field { get; } = field;
    /// <summary>For Unsupported: the feature's short name ("compressed clusters", "backing file", "bitmaps", ...).</summary>
    public string? Feature { get; } = feature;
}
