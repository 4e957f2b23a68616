using QcowActors.Api.Http;
using Xunit;

namespace QcowActors.Api.Tests.Parsing;

public sealed class ContentRangeHeaderTests
{
    [Theory]
    [InlineData("bytes 0-1023/*", 0, 1023, null)]
    [InlineData("bytes 1048576-2097151/*", 1048576, 2097151, null)]
    [InlineData("bytes 0-0/1", 0, 0, 1L)]
    [InlineData("bytes 10-19/1000", 10, 19, 1000L)]
    [InlineData("BYTES 10-19/1000", 10, 19, 1000L)]
    [InlineData("  bytes 10-19/*  ", 10, 19, null)]
    public void Valid_content_range_gives_first_last_and_complete_length(string value, long first, long last, long? complete)
    {
        Assert.True(ContentRangeHeader.TryParse(value, out ContentRangeHeader range, out string error), error);
        Assert.Equal(new ContentRangeHeader(first, last, complete), range);
        Assert.Equal(last - first + 1, range.Length);
    }

    [Theory]
    [InlineData("bytes */1000")]
    [InlineData("bytes 0-/1000")]
    [InlineData("bytes -5/1000")]
    [InlineData("bytes 0-10")]
    [InlineData("bytes=0-10/*")]
    [InlineData("items 0-10/*")]
    [InlineData("bytes a-b/*")]
    [InlineData("bytes 0-10/abc")]
    [InlineData("bytes 0-10/")]
    [InlineData("bytes 0-99999999999999999999/*")]
    [InlineData("0-10/*")]
    [InlineData("")]
    public void Malformed_content_range_is_rejected(string value)
        => Assert.False(ContentRangeHeader.TryParse(value, out _, out _));

    [Fact]
    public void Last_before_first_is_rejected_with_a_reason()
    {
        Assert.False(ContentRangeHeader.TryParse("bytes 10-5/*", out _, out string error));
        Assert.Contains("before its first", error);
    }

    [Fact]
    public void Range_ending_past_its_own_complete_length_is_rejected()
    {
        Assert.False(ContentRangeHeader.TryParse("bytes 0-1000/1000", out _, out string error));
        Assert.Contains("complete length", error);
    }
}
