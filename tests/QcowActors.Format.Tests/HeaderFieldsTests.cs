namespace QcowActors.Format.Tests;

public sealed class HeaderFieldsTests
{
    /// <summary>qcow2.txt "Header": name, offset and width of every field, in order.</summary>
    public static TheoryData<string, int, int> Spec => new()
    {
        { "magic", 0, 4 }, { "version", 4, 4 }, { "backing_file_offset", 8, 8 }, { "backing_file_size", 16, 4 },
        { "cluster_bits", 20, 4 }, { "size", 24, 8 }, { "crypt_method", 32, 4 }, { "l1_size", 36, 4 },
        { "l1_table_offset", 40, 8 }, { "refcount_table_offset", 48, 8 }, { "refcount_table_clusters", 56, 4 },
        { "nb_snapshots", 60, 4 }, { "snapshots_offset", 64, 8 }, { "incompatible_features", 72, 8 },
        { "compatible_features", 80, 8 }, { "autoclear_features", 88, 8 }, { "refcount_order", 96, 4 },
        { "header_length", 100, 4 }, { "compression_type", 104, 1 },
    };

    [Theory]
    [MemberData(nameof(Spec))]
    public void Field_table_matches_the_spec(string name, int offset, int width)
    {
        var field = Assert.Single(HeaderFields.All, f => f.Name == name);
        Assert.Equal(offset, field.Offset);
        Assert.Equal(width, field.Width);
        Assert.Same(field, HeaderFields.Get(field.Id)); // the table is indexed by HeaderField
    }

    [Fact]
    public void Field_table_has_every_field_once_in_offset_order()
    {
        Assert.Equal(Spec.Count(), HeaderFields.All.Count);
        for (int i = 1; i < HeaderFields.All.Count; i++)
            Assert.True(HeaderFields.All[i - 1].Offset + HeaderFields.All[i - 1].Width <= HeaderFields.All[i].Offset);
    }

    [Theory]
    [InlineData(72u, false)]
    [InlineData(104u, false)]
    [InlineData(112u, true)]
    public void Compression_type_is_present_only_when_header_length_passes_its_offset(uint headerLength, bool present)
        => Assert.Equal(present, HeaderFields.Get(HeaderField.CompressionType).IsPresent(headerLength));
}
