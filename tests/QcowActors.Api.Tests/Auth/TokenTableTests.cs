using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Primitives;
using QcowActors.Api.Auth;
using Xunit;

namespace QcowActors.Api.Tests.Auth;

public sealed class TokenTableTests
{
    private static readonly TokenTable Table = new(
    [
        new TokenOptions { Name = "reader", Scope = "read", Sha256 = AuthTestTokens.Sha256(AuthTestTokens.Read) },
        new TokenOptions { Name = "admin", Scope = "admin", Sha256 = AuthTestTokens.Sha256(AuthTestTokens.Admin) },
        new TokenOptions { Name = "short", Scope = "admin", Sha256 = AuthTestTokens.Sha256(AuthTestTokens.Short) },
    ], "Token");

    private static AuthenticateResult Check(params string[] headers) => Table.Authenticate(new StringValues(headers)).Result;

    private static string Basic(string token) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("qemu:" + token));

    [Fact]
    public void A_configured_token_authenticates_as_its_name_and_scope_in_both_forms()
    {
        foreach (string header in new[] { "Bearer " + AuthTestTokens.Admin, Basic(AuthTestTokens.Admin) })
        {
            AuthenticateResult result = Check(header);
            Assert.True(result.Succeeded);
            Assert.Equal("admin", result.Principal!.Identity!.Name);
            Assert.Equal("admin", result.Principal.FindFirst(Scopes.ClaimType)!.Value);
        }
        Assert.Equal("read", Check("Bearer " + AuthTestTokens.Read).Principal!.FindFirst(Scopes.ClaimType)!.Value);
    }

    [Fact]
    public void No_header_is_no_result_not_a_failure()
    {
        AuthenticateResult result = Check();
        Assert.True(result.None);
    }

    [Theory]
    [InlineData("Bearer wrong-token-0123456789abcdefghijklmnopqrstu", "not one this server accepts")]
    [InlineData("Bearer " + AuthTestTokens.Short, "at least 32 characters")]
    [InlineData("Digest x", "scheme is not accepted")]
    [InlineData("Basic %%%", "base64 of USER:TOKEN")]
    public void Refusals_say_why(string header, string reason)
    {
        AuthenticateResult result = Check(header);
        Assert.False(result.Succeeded);
        Assert.Contains(reason, result.Failure!.Message);
        if (header.Split(' ')[^1] is { Length: > 8 } presented)
            Assert.DoesNotContain(presented, result.Failure.Message);
    }

    [Fact]
    public void A_short_token_is_refused_in_the_basic_form_too_even_with_its_hash_configured()
        => Assert.Contains("at least 32 characters", Check(Basic(AuthTestTokens.Short)).Failure!.Message);

    [Fact]
    public void Several_authorization_headers_are_refused()
        => Assert.Contains("one Authorization header", Check("Bearer " + AuthTestTokens.Read, "Bearer " + AuthTestTokens.Admin).Failure!.Message);

    [Fact]
    public void Find_compares_the_digest_with_every_entry()
    {
        Assert.Equal(0, Table.Find(Encoding.UTF8.GetBytes(AuthTestTokens.Read)));
        Assert.Equal(1, Table.Find(Encoding.UTF8.GetBytes(AuthTestTokens.Admin)));
        Assert.Equal(-1, Table.Find(Encoding.UTF8.GetBytes(AuthTestTokens.Read + "x")));
    }

    [Fact]
    public void A_successful_check_allocates_nothing_per_request()
    {
        var header = new StringValues("Bearer " + AuthTestTokens.Read);
        Table.Authenticate(header);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
            Table.Authenticate(header);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
