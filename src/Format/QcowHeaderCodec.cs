namespace QcowActors.Format;

/// <summary>Table-driven parse/write of the header; field offsets named as in qcow2.txt.</summary>
internal static class QcowHeaderCodec
{
    public static QcowHeader Parse(ReadOnlySpan<byte> firstCluster, long fileLength) => throw new NotImplementedException();
    public static int Write(QcowHeader header, Span<byte> cluster) => throw new NotImplementedException();
}
