using QcowActors.Api.Http;
using Xunit;

namespace QcowActors.Api.Tests.Parsing;

public sealed class FlushParameterTests
{
    [Theory]
    [InlineData(null, true)]
    [InlineData("", true)]
    [InlineData("y", true)]
    [InlineData("Y", true)]
    [InlineData("yes", true)]
    [InlineData("true", true)]
    [InlineData("1", true)]
    [InlineData("n", false)]
    [InlineData("no", false)]
    [InlineData("false", false)]
    [InlineData("0", false)]
    public void Flush_defaults_to_yes_and_takes_imageio_and_boolean_spellings(string? value, bool expected)
    {
        Assert.True(FlushParameter.TryParse(value, out bool flush, out _));
        Assert.Equal(expected, flush);
    }

    [Theory]
    [InlineData("maybe")]
    [InlineData("2")]
    public void Other_flush_values_are_rejected(string value)
        => Assert.False(FlushParameter.TryParse(value, out _, out _));
}
