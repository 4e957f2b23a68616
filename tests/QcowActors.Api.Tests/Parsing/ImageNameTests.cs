using QcowActors.Api.Http;
using Xunit;

namespace QcowActors.Api.Tests.Parsing;

public sealed class ImageNameTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("vm1")]
    [InlineData("Debian-12.disk_0")]
    [InlineData("0")]
    [InlineData("a..b")]
    public void Names_of_letters_digits_dot_underscore_dash_are_valid(string name)
        => Assert.Null(ImageName.Validate(name));

    [Fact]
    public void Name_of_128_characters_is_valid_and_129_is_not()
    {
        Assert.Null(ImageName.Validate(new string('a', 128)));
        Assert.NotNull(ImageName.Validate(new string('a', 129)));
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("../etc")]
    [InlineData("..%2Fetc")]
    [InlineData(".hidden")]
    [InlineData("-rf")]
    [InlineData("_x")]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData("a b")]
    [InlineData("a:b")]
    [InlineData("a\0b")]
    [InlineData("vm1\n")]
    [InlineData("é")]
    public void Names_that_could_leave_the_store_or_hide_are_invalid(string? name)
        => Assert.NotNull(ImageName.Validate(name));
}
