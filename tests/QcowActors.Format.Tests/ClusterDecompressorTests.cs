using System.IO.Compression;
using ZstdSharp;

namespace QcowActors.Format.Tests;

/// <summary>Inflating one cluster as QEMU does: stop once it is full, whatever follows the data.</summary>
public sealed class ClusterDecompressorTests
{
    private const int Cluster = 65536;

    private static byte[] Plain(int seed)
    {
        var rng = new Random(seed);
        var bytes = new byte[Cluster];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)rng.Next(16);
        return bytes;
    }

    private static byte[] Deflate(byte[] plain)
    {
        using var output = new MemoryStream();
        using (var deflate = new DeflateStream(output, CompressionLevel.Fastest, leaveOpen: true)) deflate.Write(plain);
        return output.ToArray();
    }

    private static byte[] Zstd(ReadOnlySpan<byte> plain)
    {
        using var compressor = new Compressor(3);
        return compressor.Wrap(plain).ToArray();
    }

    /// <summary>The data followed by what a sector-rounded span carries after it: the next cluster's bytes.</summary>
    private static byte[] WithTrailing(byte[] data, int trailing) => [.. data, .. Enumerable.Range(0, trailing).Select(i => (byte)(i * 7 + 1))];

    [Theory]
    [InlineData(QcowCompression.Zlib)]
    [InlineData(QcowCompression.Zstd)]
    public void A_cluster_inflates_with_trailing_bytes_after_its_data(byte type)
    {
        var plain = Plain(type);
        var compressed = type == QcowCompression.Zstd ? Zstd(plain) : Deflate(plain);
        using var d = new ClusterDecompressor(type);
        var output = new byte[Cluster];
        Assert.Null(d.TryDecompress(WithTrailing(compressed, 511), output));
        Assert.Equal(plain, output);
        // The same instance again (a zstd context is reused).
        Array.Clear(output);
        Assert.Null(d.TryDecompress(WithTrailing(compressed, 3), output));
        Assert.Equal(plain, output);
    }

    [Fact]
    public void A_zstd_cluster_may_hold_several_frames()
    {
        var plain = Plain(9);
        byte[] frames = [.. Zstd(plain.AsSpan(0, 10000)), .. Zstd(plain.AsSpan(10000, 30000)), .. Zstd(plain.AsSpan(40000))];
        using var d = new ClusterDecompressor(QcowCompression.Zstd);
        var output = new byte[Cluster];
        Assert.Null(d.TryDecompress(WithTrailing(frames, 200), output));
        Assert.Equal(plain, output);
    }

    [Theory]
    [InlineData(QcowCompression.Zlib)]
    [InlineData(QcowCompression.Zstd)]
    public void Data_that_ends_before_the_cluster_is_full_or_is_garbage_is_an_error_not_a_short_cluster(byte type)
    {
        var plain = Plain(3);
        var compressed = type == QcowCompression.Zstd ? Zstd(plain) : Deflate(plain);
        using var d = new ClusterDecompressor(type);
        var output = new byte[Cluster];
        Assert.NotNull(d.TryDecompress(compressed.AsMemory(0, compressed.Length / 2), output));
        Assert.NotNull(d.TryDecompress(Enumerable.Repeat((byte)0xff, 4096).ToArray(), output));
        // Still usable after an error.
        Assert.Null(d.TryDecompress(compressed, output));
        Assert.Equal(plain, output);
    }
}
