using QcowActors.Api.Http;
using Xunit;

namespace QcowActors.Api.Tests.Parsing;

public sealed class ByteSizeTests
{
    [Theory]
    [InlineData("1024", 1024L)]
    [InlineData("0", 0L)]
    [InlineData("64K", 64L << 10)]
    [InlineData("64k", 64L << 10)]
    [InlineData("512M", 512L << 20)]
    [InlineData("10G", 10L << 30)]
    [InlineData("10g", 10L << 30)]
    [InlineData("10GiB", 10L << 30)]
    [InlineData("10gib", 10L << 30)]
    [InlineData("1T", 1L << 40)]
    [InlineData("2P", 2L << 50)]
    [InlineData("1E", 1L << 60)]
    [InlineData("7E", 7L << 60)]
    [InlineData("100B", 100L)]
    [InlineData("1.5G", 3L << 29)]
    [InlineData("0.5K", 512L)]
    [InlineData(" 10G ", 10L << 30)]
    [InlineData("10 G", 10L << 30)]
    public void Sizes_take_binary_suffixes_like_qemu_img(string text, long expected)
    {
        Assert.True(ByteSize.TryParse(text, out long bytes, out string error), error);
        Assert.Equal(expected, bytes);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("G", "not a number")]
    [InlineData("-1G", "not a number")]
    [InlineData("10X", "unknown suffix")]
    [InlineData("10GB", "unknown suffix")]
    [InlineData("10KiBB", "unknown suffix")]
    [InlineData("1.2.3G", "not a number")]
    [InlineData(".5G", "not a number")]
    [InlineData("5.G", "not a number")]
    [InlineData("1.1B", "whole number")]
    [InlineData("0.3K", "whole number")]
    [InlineData("8E", "too large")]
    [InlineData("99999999999999999999", "too large")]
    [InlineData("1e9", "unknown suffix")]
    public void Bad_sizes_are_rejected_with_a_reason(string text, string reason)
    {
        Assert.False(ByteSize.TryParse(text, out _, out string error));
        Assert.Contains(reason, error);
    }
}
