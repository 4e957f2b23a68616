using System.Buffers;
using System.IO.Compression;
using System.Runtime.InteropServices;
using ZstdSharp;

namespace QcowActors.Format;

/// <summary>
/// Inflates one compressed cluster (qcow2.txt "Compressed Clusters Descriptor"): raw deflate for
/// compression type zlib, zstd for type zstd. The input is the descriptor's whole span, which is
/// rounded up to a sector and so usually carries bytes of whatever follows; like QEMU, decoding
/// stops as soon as the cluster is full, and a zstd span may hold several frames. Not thread-safe
/// (a zstd context is kept between calls): one instance per thread at a time.
/// </summary>
public sealed class ClusterDecompressor : IDisposable
{
    private readonly byte _compressionType;
    private Decompressor? _zstd;

    public ClusterDecompressor(byte compressionType)
    {
        if (compressionType > QcowCompression.Zstd)
            throw new ArgumentOutOfRangeException(nameof(compressionType), compressionType, "unknown compression type");
        _compressionType = compressionType;
    }

    public byte CompressionType => _compressionType;

    /// <summary>Fills <paramref name="cluster"/> from <paramref name="input"/>; null on success, else why the data is not a valid compressed cluster.</summary>
    public string? TryDecompress(ReadOnlyMemory<byte> input, Span<byte> cluster)
        => _compressionType == QcowCompression.Zstd ? InflateZstd(input.Span, cluster) : InflateDeflate(input, cluster);

    private string? InflateZstd(ReadOnlySpan<byte> input, Span<byte> cluster)
    {
        _zstd ??= new Decompressor();
        _zstd.ResetStream();
        int filled = 0;
        try
        {
            while (filled < cluster.Length)
            {
                _zstd.UnwrapStream(input, cluster[filled..], out int consumed, out int written);
                if (consumed == 0 && written == 0) break; // no progress: the data ended before the cluster was full
                input = input[consumed..];
                filled += written;
            }
        }
        catch (ZstdException e)
        {
            _zstd.Dispose(); // its state is unknown after an error
            _zstd = null;
            return $"zstd data is invalid ({e.Message})";
        }
        return filled == cluster.Length ? null : $"zstd data ends after {filled} of {cluster.Length} bytes";
    }

    private static string? InflateDeflate(ReadOnlyMemory<byte> input, Span<byte> cluster)
    {
        // DeflateStream has no span API: it reads the input's array through a stream (copied first only if it has none).
        byte[]? rented = null;
        if (!MemoryMarshal.TryGetArray(input, out var segment))
        {
            rented = ArrayPool<byte>.Shared.Rent(input.Length);
            input.Span.CopyTo(rented);
            segment = new ArraySegment<byte>(rented, 0, input.Length);
        }
        try
        {
            using var source = new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false);
            using var inflater = new DeflateStream(source, CompressionMode.Decompress);
            int filled = 0;
            while (filled < cluster.Length)
            {
                int n = inflater.Read(cluster[filled..]);
                if (n == 0) break;
                filled += n;
            }
            return filled == cluster.Length ? null : $"deflate data ends after {filled} of {cluster.Length} bytes";
        }
        catch (InvalidDataException e)
        {
            return $"deflate data is invalid ({e.Message})";
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    public void Dispose()
    {
        _zstd?.Dispose();
        _zstd = null;
    }
}
