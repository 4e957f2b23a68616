namespace QcowActors.Format;

/// <summary>Values of the v3 compression_type header field (qcow2.txt "Additional fields").</summary>
public static class QcowCompression
{
    /// <summary>Raw deflate; the default, and the only type a header without compression_type can mean.</summary>
    public const byte Zlib = 0;
    /// <summary>Requires the compression type incompatible bit.</summary>
    public const byte Zstd = 1;
}
