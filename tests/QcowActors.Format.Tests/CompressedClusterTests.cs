using System.Buffers.Binary;
using System.IO.Compression;
using QcowActors.Format.Tests.Support;

namespace QcowActors.Format.Tests;

/// <summary>Descriptors of clusters qemu-img really compressed: decoding them must find the deflate data.</summary>
public sealed class CompressedClusterTests : IDisposable
{
    private const byte Pattern = 0x3c;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(65536)]
    [InlineData(4096)]
    public void Descriptor_of_a_qemu_compressed_cluster_points_at_raw_deflate_of_it(int clusterSize)
    {
        string raw = _dir.File("raw.img"), image = _dir.File("compressed.qcow2");
        var data = new byte[4 * clusterSize];
        Array.Fill(data, Pattern);
        File.WriteAllBytes(raw, data);
        Qemu.ImgOk("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", $"cluster_size={clusterSize}", raw, image);

        var header = ImageFiles.ParseHeader(image);
        var layout = header.Layout;
        byte[] l1 = ImageFiles.ReadAt(image, header.L1TableOffset, (int)header.L1Size * 8);
        var l1Entry = L1Entry.From(BinaryPrimitives.ReadUInt64BigEndian(l1));
        byte[] l2 = ImageFiles.ReadAt(image, l1Entry.L2Offset, layout.ClusterSize);
        long fileLength = new FileInfo(image).Length;

        for (int cluster = 0; cluster < 4; cluster++)
        {
            var entry = L2Entry.From(BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(cluster * 8)));
            Assert.True(entry.IsCompressed, $"cluster {cluster} is compressed");
            Assert.False(entry.Copied);
            var descriptor = CompressedDescriptor.From(entry.ToRaw(), header.ClusterBits);
            var (first, last) = descriptor.HostClusters(header.ClusterBits);
            Assert.True(last * layout.ClusterSize < fileLength);
            Assert.True(first <= last);

            byte[] compressed = ImageFiles.ReadAt(image, descriptor.HostOffset, descriptor.MaxCompressedLength);
            using var inflate = new DeflateStream(new MemoryStream(compressed), CompressionMode.Decompress);
            var plain = new byte[layout.ClusterSize];
            inflate.ReadExactly(plain);
            Assert.All(plain, b => Assert.Equal(Pattern, b));
        }
    }
}
