using System.Text.Json;
using QcowActors.Format.Tests.Support;

namespace QcowActors.Format.Tests.Bitmaps;

/// <summary>Bitmaps written by qemu-img and qemu-io; expectations come from qemu-img info and the spec's arithmetic.</summary>
public sealed class BitmapQemuTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private sealed record Loaded(QcowHeader Header, BitmapsExtension Extension, byte[] DirectoryBytes, IReadOnlyList<BitmapDirectoryEntry> Entries, long FileLength);

    private static Loaded Load(string path)
    {
        var header = ImageFiles.ParseHeader(path);
        long fileLength = new FileInfo(path).Length;
        Assert.NotEqual(0UL, header.AutoclearFeatures & FeatureBits.AutoclearBitmaps);
        var raw = header.FindExtension(HeaderExtensionType.Bitmaps);
        Assert.NotNull(raw);
        var extension = BitmapsExtension.Parse(raw.Data, fileLength, header.ClusterBits);
        Assert.Equal(raw.Data, extension.ToBytes());
        byte[] directory = ImageFiles.ReadAt(path, extension.DirectoryOffset, (int)extension.DirectorySize);
        var entries = BitmapDirectory.Parse(directory, extension.Count, header.Size, header.ClusterBits, fileLength);
        return new Loaded(header, extension, directory, entries, fileLength);
    }

    /// <summary>The bitmap's data as qemu stored it: table read and decoded, each cluster loaded.</summary>
    private static (DirtyBits Bits, BitmapTableEntry[] Table) LoadBits(string path, Loaded image, BitmapDirectoryEntry entry)
    {
        int clusterSize = image.Header.ClusterSize;
        var table = BitmapTable.ParseEntries(ImageFiles.ReadAt(path, entry.TableOffset, entry.TableSize * BitmapTable.EntryBytes))
            .Select(raw => BitmapTable.Decode(raw, image.Header.ClusterBits, image.FileLength)).ToArray();
        var bits = new DirtyBits(image.Header.Size, entry.GranularityBits);
        Assert.Equal(bits.ChunkCount(clusterSize), table.Length);
        for (int chunk = 0; chunk < table.Length; chunk++)
        {
            if (table[chunk].Kind == BitmapTableEntryKind.Ones)
                bits.LoadChunkAllOnes(chunk, clusterSize);
            else if (table[chunk].Kind == BitmapTableEntryKind.Data)
            {
                byte[] cluster = ImageFiles.ReadAt(path, table[chunk].Offset, clusterSize);
                bits.LoadChunk(chunk, cluster);
                var rewritten = new byte[clusterSize];
                bits.WriteChunk(chunk, rewritten);
                Assert.Equal(cluster, rewritten); // QEMU zero-pads the tail as we do
            }
        }
        return (bits, table);
    }

    private static List<JsonElement> InfoBitmaps(string path)
        => Qemu.ImgOk("info", "--output=json", path).Json.GetProperty("format-specific").GetProperty("data")
            .GetProperty("bitmaps").EnumerateArray().ToList();

    [Fact]
    public void Parse_reads_the_directory_qemu_img_bitmap_writes()
    {
        string path = _dir.File("x.qcow2");
        Qemu.ImgOk("create", "-q", "-f", "qcow2", path, "64M");
        Qemu.ImgOk("bitmap", "--add", "-g", "65536", path, "b1");
        Qemu.ImgOk("bitmap", "--add", "--disable", path, "b2");

        var image = Load(path);
        var info = InfoBitmaps(path);
        Assert.Equal(2u, image.Extension.Count);
        Assert.Equal(info.Count, image.Entries.Count);
        for (int i = 0; i < info.Count; i++)
        {
            var entry = image.Entries[i];
            var flags = info[i].GetProperty("flags").EnumerateArray().Select(f => f.GetString()).ToList();
            Assert.Equal(info[i].GetProperty("name").GetString(), entry.Name);
            Assert.Equal(info[i].GetProperty("granularity").GetInt64(), entry.Granularity);
            Assert.Equal(flags.Contains("auto"), entry.Auto);
            Assert.Equal(flags.Contains("in-use"), entry.InUse);
            Assert.False(entry.InUse);
            Assert.Empty(entry.ExtraData);
            // 64 MiB at 64 KiB granularity: 1024 bits = 128 bytes, one 64 KiB cluster of data.
            Assert.Equal(1, entry.TableSize);
        }
        Assert.Equal(["b1", "b2"], image.Entries.Select(e => e.Name));
        Assert.True(image.Entries[0].Auto);
        Assert.False(image.Entries[1].Auto);

        var written = new byte[BitmapDirectory.SizeOf(image.Entries)];
        BitmapDirectory.Write(image.Entries, written);
        Assert.Equal(image.DirectoryBytes, written);
    }

    [Fact]
    public void Qemu_io_marks_the_enabled_bitmap_and_we_read_exactly_that_granule()
    {
        string path = _dir.File("w.qcow2");
        Qemu.ImgOk("create", "-q", "-f", "qcow2", path, "64M");
        Qemu.ImgOk("bitmap", "--add", "-g", "65536", path, "enabled");
        Qemu.ImgOk("bitmap", "--add", "-g", "65536", "--disable", path, "disabled");
        Qemu.IoOk("-f", "qcow2", "-c", "write 1M 64k", path);

        var image = Load(path);
        var (enabled, enabledTable) = LoadBits(path, image, image.Entries.Single(e => e.Name == "enabled"));
        Assert.Equal(BitmapTableEntryKind.Data, Assert.Single(enabledTable).Kind);
        Assert.Equal(1, enabled.CountSet());
        Assert.True(enabled.IsSet((1 << 20) / 65536));
        Assert.Equal([(1L << 20, 65536L)], enabled.DirtyRuns(0, image.Header.Size));

        var (disabled, disabledTable) = LoadBits(path, image, image.Entries.Single(e => e.Name == "disabled"));
        Assert.Equal(BitmapTableEntry.Zeros, Assert.Single(disabledTable)); // QEMU stores an empty cluster as entry 0
        Assert.Equal(0, disabled.CountSet());
    }

    [Fact]
    public void A_many_cluster_bitmap_keeps_each_write_in_its_own_chunk()
    {
        // 512-byte clusters and granularity: 64 MiB = 131072 bits = 16 KiB of data = 32 table entries,
        // each covering 4096 granules (2 MiB of disk).
        string path = _dir.File("small.qcow2");
        Qemu.ImgOk("create", "-q", "-f", "qcow2", "-o", "cluster_size=512", path, "64M");
        Qemu.ImgOk("bitmap", "--add", "-g", "512", path, "fine");
        Qemu.IoOk("-f", "qcow2", "-c", "write 40M 1536", "-c", "write 2047k 2k", path);

        var image = Load(path);
        var entry = Assert.Single(image.Entries);
        Assert.Equal(32, entry.TableSize);
        var (bits, table) = LoadBits(path, image, entry);
        // 40 MiB is granule 81920, in chunk 20; 2047 KiB..2049 KiB spans chunks 0 and 1.
        var dataChunks = Enumerable.Range(0, table.Length).Where(c => table[c].Kind == BitmapTableEntryKind.Data);
        Assert.Equal([0, 1, 20], dataChunks);
        Assert.Equal([(2047L << 10, 2048L), (40L << 20, 1536L)], bits.DirtyRuns(0, image.Header.Size));
        Assert.Equal(ChunkState.Mixed, bits.StateOf(20, 512));
        Assert.Equal(ChunkState.Zeros, bits.StateOf(21, 512));
    }
}
