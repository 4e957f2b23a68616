using System.Text;
using QcowActors.Api.Auth;
using Xunit;

namespace QcowActors.Api.Tests.Auth;

public sealed class AuthorizationHeaderTests
{
    private static (PresentedCredentials Result, string Token, int Chars) Read(string header)
    {
        byte[] buffer = new byte[AuthorizationHeader.BufferBytes];
        PresentedCredentials result = AuthorizationHeader.Read(header, buffer, out Range token, out int chars);
        return (result, Encoding.UTF8.GetString(buffer.AsSpan()[token]), chars);
    }

    private static string Basic(string credentials) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(credentials));

    [Theory]
    [InlineData("Bearer abc", "abc")]
    [InlineData("bearer   abc  ", "abc")]
    [InlineData("BEARER abc:def", "abc:def")]
    public void Bearer_token_is_the_rest_of_the_header(string header, string token)
        => Assert.Equal((PresentedCredentials.Token, token, token.Length), Read(header));

    [Theory]
    [InlineData("user:secret", "secret")]
    [InlineData(":secret", "secret")]
    [InlineData("any:sec:ret", "sec:ret")]
    [InlineData("u:sécret", "sécret")]
    public void Basic_token_is_the_password(string credentials, string token)
        => Assert.Equal((PresentedCredentials.Token, token, token.Length), Read(Basic(credentials)));

    [Theory]
    [InlineData("Digest abc", nameof(PresentedCredentials.UnsupportedScheme))]
    [InlineData("Bearer", nameof(PresentedCredentials.UnsupportedScheme))]
    [InlineData("", nameof(PresentedCredentials.UnsupportedScheme))]
    [InlineData("Bearer    ", nameof(PresentedCredentials.UnsupportedScheme))]
    [InlineData("Basic !!!notbase64", nameof(PresentedCredentials.MalformedBasic))]
    [InlineData("Basic dXNlcg==", nameof(PresentedCredentials.MalformedBasic))] // "user": no colon
    [InlineData("Basic dXNlcjo=", nameof(PresentedCredentials.Empty))] // "user:"
    public void Other_headers_are_named(string header, string expected)
        => Assert.Equal(expected, Read(header).Result.ToString());

    [Fact]
    public void Oversized_credentials_are_refused_before_decoding()
    {
        Assert.Equal(PresentedCredentials.TooLong, Read("Bearer " + new string('x', TokenRules.MaxChars + 1)).Result);
        Assert.Equal(PresentedCredentials.Token, Read("Bearer " + new string('x', TokenRules.MaxChars)).Result);
        Assert.Equal(PresentedCredentials.TooLong, Read(Basic("u:" + new string('x', TokenRules.MaxBasicBytes))).Result);
        Assert.Equal(PresentedCredentials.TooLong, Read(Basic("u:" + new string('x', TokenRules.MaxChars + 1))).Result);
        Assert.Equal(PresentedCredentials.Token, Read(Basic("u:" + new string('x', TokenRules.MaxChars))).Result);
    }

    [Fact]
    public void Invalid_utf8_in_basic_credentials_is_malformed()
        => Assert.Equal(PresentedCredentials.MalformedBasic, Read("Basic " + Convert.ToBase64String([(byte)'u', (byte)':', 0xff, 0xfe])).Result);
}
