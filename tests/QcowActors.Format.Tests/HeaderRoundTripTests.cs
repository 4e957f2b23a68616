using QcowActors.Format.Tests.Support;
using Xunit.Abstractions;
using static QcowActors.Format.HeaderFields;

namespace QcowActors.Format.Tests;

public sealed class HeaderRoundTripTests(ITestOutputHelper output)
{
    private const int ClusterBits = 16;
    private const int ClusterSize = 1 << ClusterBits;
    private const long FileLength = 1L << 40; // large enough for every table the headers below point at
    private const uint UnknownExtensionType = 0x12345678;

    private static QcowHeader V2Header() => new()
    {
        Version = 2,
        ClusterBits = ClusterBits,
        Size = 10L << 30,
        L1Size = 20,
        L1TableOffset = 3L * ClusterSize,
        RefcountTableOffset = ClusterSize,
        RefcountTableClusters = 1,
        NbSnapshots = 2,
        SnapshotsOffset = 7L * ClusterSize,
        BackingFile = "base image.qcow2",
    };

    private static QcowHeader V3Header()
    {
        var header = V2Header();
        header.Version = 3;
        header.IncompatibleFeatures = FeatureBits.IncompatibleDirty | FeatureBits.IncompatibleCompressionType;
        header.CompatibleFeatures = FeatureBits.CompatibleLazyRefcounts | 1UL << 40; // unknown compatible bits are kept
        header.AutoclearFeatures = FeatureBits.AutoclearBitmaps;
        header.RefcountOrder = 6;
        header.HeaderLength = 120;
        header.CompressionType = QcowCompression.Zstd;
        // byte 0 is compression_type; the rest is an unknown future field that must survive.
        header.AdditionalFields = [QcowCompression.Zstd, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        header.Extensions.Add(new HeaderExtension(HeaderExtensionType.BackingFormat, "qcow2"u8.ToArray()));
        header.Extensions.Add(new HeaderExtension(UnknownExtensionType, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0xff, 0xfe, 0xfd]));
        header.Extensions.Add(FeatureNameTable.Build());
        return header;
    }

    private static QcowHeader WriteAndParse(QcowHeader header, out byte[] cluster, out int used)
    {
        cluster = new byte[ClusterSize];
        used = header.WriteTo(cluster);
        return QcowHeader.Parse(cluster, FileLength);
    }

    private static void AssertSameHeader(QcowHeader expected, QcowHeader actual)
    {
        foreach (var field in All)
            Assert.True(field.Get(expected) == field.Get(actual), $"{field.Name}: {field.Get(expected)} != {field.Get(actual)}");
        Assert.Equal(expected.AdditionalFields, actual.AdditionalFields);
        Assert.Equal(expected.BackingFile, actual.BackingFile);
        Assert.Equal(expected.Extensions.Count, actual.Extensions.Count);
        for (int i = 0; i < expected.Extensions.Count; i++)
        {
            Assert.Equal(expected.Extensions[i].Type, actual.Extensions[i].Type);
            Assert.Equal(expected.Extensions[i].Data, actual.Extensions[i].Data);
        }
    }

    [Fact]
    public void V2_header_round_trips_every_field()
    {
        var header = V2Header();
        var parsed = WriteAndParse(header, out _, out _);
        AssertSameHeader(header, parsed);
        Assert.Equal(4, parsed.RefcountOrder);
        Assert.Equal((uint)QcowHeader.V2Length, parsed.HeaderLength);
    }

    [Fact]
    public void V2_write_is_the_72_byte_header_then_the_end_marker_and_backing_name()
    {
        var header = V2Header();
        WriteAndParse(header, out byte[] cluster, out int used);
        const int EndMarker = 8;
        Assert.Equal(QcowHeader.V2Length + EndMarker, header.BackingFileOffset);
        Assert.Equal(header.BackingFileOffset + header.BackingFileSize, used);
        Assert.All(cluster[QcowHeader.V2Length..(QcowHeader.V2Length + EndMarker)], b => Assert.Equal(0, b));
    }

    [Fact]
    public void V3_header_round_trips_every_field_extension_and_additional_field()
    {
        var header = V3Header();
        AssertSameHeader(header, WriteAndParse(header, out _, out _));
    }

    [Fact]
    public void Write_lays_out_extensions_padded_to_8_then_end_marker_then_backing_name()
    {
        var header = V3Header();
        WriteAndParse(header, out byte[] cluster, out int used);
        int expectedOffset = (int)header.HeaderLength;
        foreach (var extension in header.Extensions)
        {
            Assert.Equal(extension.Type, TestImages.GetU32(cluster, expectedOffset));
            Assert.Equal((uint)extension.Data.Length, TestImages.GetU32(cluster, expectedOffset + 4));
            expectedOffset += 8 + (extension.Data.Length + 7) / 8 * 8;
        }
        Assert.Equal(0UL, TestImages.GetU64(cluster, expectedOffset));
        Assert.Equal(expectedOffset + 8, header.BackingFileOffset);
        Assert.Equal(used, header.BackingFileOffset + header.BackingFileSize);
        Assert.All(cluster[used..], b => Assert.Equal(0, b));
    }

    [Fact]
    public void Write_without_backing_file_sets_offset_and_size_to_0()
    {
        var header = V3Header();
        header.BackingFile = null;
        header.BackingFileOffset = 12345;
        var parsed = WriteAndParse(header, out _, out _);
        Assert.Equal(0, parsed.BackingFileOffset);
        Assert.Equal(0u, parsed.BackingFileSize);
        Assert.Null(parsed.BackingFile);
    }

    [Fact]
    public void Compression_type_wins_over_additional_fields_for_byte_104()
    {
        var header = V3Header();
        header.AdditionalFields[0] = 0;
        var parsed = WriteAndParse(header, out byte[] cluster, out _);
        Assert.Equal(QcowCompression.Zstd, cluster[CompressionTypeOffset]);
        Assert.Equal(QcowCompression.Zstd, parsed.CompressionType);
        Assert.Equal(QcowCompression.Zstd, parsed.AdditionalFields[0]);
    }

    [Fact]
    public void Write_with_unset_header_length_uses_the_shortest_valid_one()
    {
        var header = V3Header();
        header.HeaderLength = 0;
        header.AdditionalFields = [];
        header.IncompatibleFeatures = 0;
        header.CompressionType = QcowCompression.Zlib;
        Assert.Equal((uint)QcowHeader.V3MinLength, WriteAndParse(header, out _, out _).HeaderLength);
    }

    [Fact]
    public void Unknown_extension_survives_parse_write_parse_byte_for_byte()
    {
        byte[] image = TestImages.V3();
        var header = QcowHeader.Parse(image, image.Length);
        byte[] data = [0, 1, 2, 3, 0xfe, 0xff, 42, 0, 0, 7, 0x80];
        header.Extensions.Insert(0, new HeaderExtension(UnknownExtensionType, data));
        header.WriteTo(image.AsSpan(0, ClusterSize));
        var reparsed = QcowHeader.Parse(image, image.Length);
        Assert.Equal(UnknownExtensionType, reparsed.Extensions[0].Type);
        Assert.Equal(data, reparsed.Extensions[0].Data);

        byte[] again = new byte[ClusterSize];
        reparsed.WriteTo(again);
        Assert.Equal(image[..ClusterSize], again);
    }

    [Fact]
    public void Write_refuses_extensions_that_do_not_fit_the_cluster()
    {
        var header = V3Header();
        header.Extensions.Add(new HeaderExtension(UnknownExtensionType, new byte[ClusterSize - 500]));
        var e = Assert.Throws<QcowFormatException>(() => header.WriteTo(new byte[ClusterSize]));
        Assert.Equal("header_extension", e.Field);
    }

    [Fact]
    public void Write_refuses_backing_name_that_does_not_fit_after_the_extensions()
    {
        var header = V3Header();
        header.BackingFile = new string('a', 1000);
        var e = Assert.Throws<QcowFormatException>(() => header.WriteTo(new byte[1024]));
        Assert.Equal("backing_file_offset", e.Field);
    }

    [Fact]
    public void Write_refuses_v2_with_a_refcount_order_other_than_4()
    {
        var header = V2Header();
        header.RefcountOrder = 3;
        Assert.Equal("refcount_order", Assert.Throws<QcowFormatException>(() => header.WriteTo(new byte[ClusterSize])).Field);
    }

    [Fact]
    public void Write_refuses_compression_type_without_room_for_it()
    {
        var header = V3Header();
        header.HeaderLength = (uint)QcowHeader.V3MinLength;
        header.AdditionalFields = [];
        Assert.Equal("compression_type", Assert.Throws<QcowFormatException>(() => header.WriteTo(new byte[ClusterSize])).Field);
    }

    [Fact]
    public void Write_refuses_an_extension_of_type_0()
    {
        var header = V3Header();
        header.Extensions.Add(new HeaderExtension(HeaderExtensionType.End, [1]));
        Assert.Equal("header_extension", Assert.Throws<QcowFormatException>(() => header.WriteTo(new byte[ClusterSize])).Field);
    }

    /// <summary>Parse only ever fails with QcowFormatException, however the header bytes are damaged.</summary>
    [Theory]
    [InlineData(2, 7211)]
    [InlineData(3, 7211)]
    [InlineData(3, 90210)]
    public void Parse_of_randomly_damaged_headers_throws_only_QcowFormatException(int version, int seed)
    {
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        byte[] original = version == 2 ? TestImages.V2() : TestImages.V3();
        const int DamagedPrefix = 600; // header, extensions and a little after
        for (int round = 0; round < 5000; round++)
        {
            byte[] image = (byte[])original.Clone();
            int changes = random.Next(1, 4);
            for (int c = 0; c < changes; c++)
            {
                int at = random.Next(DamagedPrefix);
                image[at] = random.Next(3) == 0 ? (byte)0xff : (byte)random.Next(256);
            }
            long fileLength = random.Next(4) == 0 ? random.NextInt64(long.MaxValue) : image.Length;
            int given = random.Next(8) == 0 ? random.Next(image.Length) : image.Length;
            try
            {
                QcowHeader.Parse(image.AsSpan(0, given), fileLength);
            }
            catch (QcowFormatException)
            {
            }
            catch (Exception e)
            {
                Assert.Fail($"seed {seed} round {round}: {e}");
            }
        }
    }
}
