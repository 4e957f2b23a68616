using Microsoft.Extensions.Primitives;
using QcowActors.Api.Http;
using Xunit;

namespace QcowActors.Api.Tests.Parsing;

/// <summary>RFC 9110 §14.1.2 / §14.2 on a disk of 1000 bytes.</summary>
public sealed class RangeHeaderTests
{
    private const long Size = 1000;

    private static RangeResolution Resolve(string? header) => RangeHeader.Resolve(header is null ? StringValues.Empty : new StringValues(header), Size);

    [Fact]
    public void No_range_header_means_the_whole_disk()
    {
        RangeResolution r = Resolve(null);
        Assert.Equal((RangeOutcome.Full, 0L, Size), (r.Outcome, r.Offset, r.Length));
    }

    [Theory]
    [InlineData("bytes=0-499", 0, 500)]
    [InlineData("bytes=500-999", 500, 500)]
    [InlineData("bytes=0-0", 0, 1)]
    [InlineData("bytes=999-999", 999, 1)]
    [InlineData("bytes=10-", 10, 990)]
    [InlineData("bytes=0-", 0, 1000)]
    [InlineData("bytes=-1", 999, 1)]
    [InlineData("bytes=-100", 900, 100)]
    public void Single_range_is_partial_content(string header, long offset, long length)
    {
        RangeResolution r = Resolve(header);
        Assert.Equal(RangeOutcome.Partial, r.Outcome);
        Assert.Equal((offset, length), (r.Offset, r.Length));
        Assert.Equal($"bytes {offset}-{offset + length - 1}/{Size}", r.ContentRange);
    }

    [Theory]
    [InlineData("bytes=500-5000", 500, 500)]
    [InlineData("bytes=0-99999999999999999999999", 0, 1000)]
    [InlineData("bytes=999-1000", 999, 1)]
    public void Last_position_past_the_end_is_clamped(string header, long offset, long length)
    {
        RangeResolution r = Resolve(header);
        Assert.Equal((RangeOutcome.Partial, offset, length), (r.Outcome, r.Offset, r.Length));
    }

    [Theory]
    [InlineData("bytes=-1000")]
    [InlineData("bytes=-5000")]
    [InlineData("bytes=-99999999999999999999999")]
    public void Suffix_longer_than_the_disk_is_the_whole_disk_as_partial_content(string header)
    {
        RangeResolution r = Resolve(header);
        Assert.Equal((RangeOutcome.Partial, 0L, Size), (r.Outcome, r.Offset, r.Length));
        Assert.Equal("bytes 0-999/1000", r.ContentRange);
    }

    [Theory]
    [InlineData("bytes=1000-")]
    [InlineData("bytes=1000-2000")]
    [InlineData("bytes=5000-6000")]
    [InlineData("bytes=99999999999999999999999-")]
    [InlineData("bytes=-0")]
    public void First_position_at_or_past_the_end_or_empty_suffix_is_not_satisfiable(string header)
    {
        RangeResolution r = Resolve(header);
        Assert.Equal(RangeOutcome.NotSatisfiable, r.Outcome);
        Assert.Equal("bytes */1000", r.ContentRange);
    }

    [Theory]
    [InlineData("bytes=0-1,5-6")]
    [InlineData("bytes=0-1, 5-6")]
    [InlineData("bytes=-1,0-")]
    [InlineData("bytes=0-1,5000-6000")]
    public void Several_ranges_are_reported_as_multiple(string header)
        => Assert.Equal(RangeOutcome.MultipleRanges, Resolve(header).Outcome);

    [Fact]
    public void Repeated_range_field_lines_are_invalid_and_ignored()
        => Assert.Equal(RangeOutcome.Full, RangeHeader.Resolve(new StringValues(["bytes=0-1", "bytes=2-3"]), Size).Outcome);

    [Fact]
    public void Range_list_split_over_field_lines_is_one_list()
        => Assert.Equal(RangeOutcome.MultipleRanges, RangeHeader.Resolve(new StringValues(["bytes=0-1", "2-3"]), Size).Outcome);

    [Theory]
    [InlineData("bytes=5-1")]
    [InlineData("bytes=abc")]
    [InlineData("bytes=1-2-3")]
    [InlineData("bytes=-")]
    [InlineData("bytes=")]
    [InlineData("bytes=,")]
    [InlineData("bytes 0-1")]
    [InlineData("items=0-1")]
    [InlineData("bytes=0x10-20")]
    [InlineData("bytes=+1-2")]
    [InlineData("bytes=1 -2")]
    [InlineData("bytes=0-1,abc")]
    [InlineData("")]
    [InlineData("   ")]
    public void Invalid_range_header_is_ignored(string header)
        => Assert.Equal(RangeOutcome.Full, Resolve(header).Outcome);

    [Theory]
    [InlineData("BYTES=0-9")]
    [InlineData("Bytes=0-9")]
    [InlineData(" bytes=0-9 ")]
    [InlineData("bytes=0-9,")]
    [InlineData("bytes=,0-9")]
    [InlineData("bytes= 0-9")]
    public void Unit_is_case_insensitive_and_empty_list_elements_are_ignored(string header)
    {
        RangeResolution r = Resolve(header);
        Assert.Equal((RangeOutcome.Partial, 0L, 10L), (r.Outcome, r.Offset, r.Length));
    }

    [Fact]
    public void Any_range_of_an_empty_disk_except_a_suffix_is_not_satisfiable()
    {
        Assert.Equal(RangeOutcome.NotSatisfiable, RangeHeader.Resolve("bytes=0-", 0).Outcome);
        Assert.Equal(RangeOutcome.NotSatisfiable, RangeHeader.Resolve("bytes=-0", 0).Outcome);
        // A non-empty suffix of nothing has no "a-b" form: the Range is ignored and the empty disk sent.
        Assert.Equal(RangeOutcome.Full, RangeHeader.Resolve("bytes=-5", 0).Outcome);
    }
}
