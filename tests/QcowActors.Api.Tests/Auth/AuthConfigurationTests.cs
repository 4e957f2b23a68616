using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using QcowActors.Api.Auth;
using Xunit;

namespace QcowActors.Api.Tests.Auth;

/// <summary>Auth configuration is refused at start, with every reason, whenever it is not exactly right; no value is quoted back.</summary>
public sealed class AuthConfigurationTests
{
    private static readonly string Hash = AuthTestTokens.Sha256(AuthTestTokens.Read);

    private static AuthOptions Read(params (string Key, string Value)[] settings)
        => AuthConfiguration.Read(new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build());

    private static string Refusal(params (string Key, string Value)[] settings)
        => string.Join('\n', Assert.Throws<OptionsValidationException>(() => Read(settings)).Failures);

    [Fact]
    public void No_section_means_no_tokens_and_nothing_allowed_beyond_loopback()
    {
        AuthOptions options = Read();
        Assert.False(options.HasTokens);
        Assert.False(options.AllowAnonymous);
        Assert.False(options.AllowPlainHttp);
    }

    [Fact]
    public void Entries_are_read_with_scopes_and_hashes_in_either_case()
    {
        AuthOptions options = Read(
            ("Auth:Tokens:0:Name", "backup"), ("Auth:Tokens:0:Scope", "Write"), ("Auth:Tokens:0:Sha256", Hash.ToUpperInvariant()),
            ("Auth:Tokens:1:Name", "ops"), ("Auth:Tokens:1:Scope", "admin"), ("Auth:Tokens:1:Sha256", AuthTestTokens.Sha256(AuthTestTokens.Admin)),
            ("Auth:AllowPlainHttp", "true"));
        Assert.Equal(["backup", "ops"], options.Tokens.Select(t => t.Name));
        Assert.Equal(["write", "admin"], options.Tokens.Select(t => t.Scope));
        Assert.Equal(Hash, options.Tokens[0].Sha256);
        Assert.True(options.AllowPlainHttp);
    }

    [Fact]
    public void A_token_in_clear_is_refused_and_not_repeated()
    {
        const string secret = "this-is-a-clear-token-0123456789abcdef";
        string refusal = Refusal(("Auth:Tokens:0:Name", "backup"), ("Auth:Tokens:0:Scope", "read"), ("Auth:Tokens:0:Token", secret));
        Assert.Contains("Auth:Tokens:0:Token holds a token in clear", refusal);
        Assert.Contains("hash-token", refusal);
        Assert.DoesNotContain(secret, refusal);
    }

    [Theory]
    [InlineData("abc", "has 3 characters")]
    [InlineData("zz00000000000000000000000000000000000000000000000000000000000000", "not all hex digits")]
    [InlineData("0000000000000000000000000000000000000000000000000000000000000000a", "has 65 characters")]
    public void A_sha256_that_is_not_64_hex_digits_is_refused(string sha256, string reason)
    {
        string refusal = Refusal(("Auth:Tokens:0:Name", "backup"), ("Auth:Tokens:0:Scope", "read"), ("Auth:Tokens:0:Sha256", sha256));
        Assert.Contains("Auth:Tokens:0:Sha256 must be 64 hex digits", refusal);
        Assert.Contains(reason, refusal);
        Assert.DoesNotContain(sha256, refusal);
    }

    [Theory]
    [InlineData("superuser")]
    [InlineData("none")]
    [InlineData("ticket")]
    public void A_scope_other_than_read_write_admin_is_refused(string scope)
        => Assert.Contains("Auth:Tokens:0:Scope must be read, write or admin",
            Refusal(("Auth:Tokens:0:Name", "backup"), ("Auth:Tokens:0:Scope", scope), ("Auth:Tokens:0:Sha256", Hash)));

    [Fact]
    public void Missing_and_duplicate_names_are_refused()
    {
        Assert.Contains("Auth:Tokens:0:Name is missing", Refusal(("Auth:Tokens:0:Scope", "read"), ("Auth:Tokens:0:Sha256", Hash)));
        string duplicate = Refusal(
            ("Auth:Tokens:0:Name", "backup"), ("Auth:Tokens:0:Scope", "read"), ("Auth:Tokens:0:Sha256", Hash),
            ("Auth:Tokens:1:Name", "Backup"), ("Auth:Tokens:1:Scope", "write"), ("Auth:Tokens:1:Sha256", AuthTestTokens.Sha256(AuthTestTokens.Write)));
        Assert.Contains("Auth:Tokens:1:Name 'Backup' is also the name of Auth:Tokens:0", duplicate);
    }

    [Fact]
    public void The_same_hash_twice_is_refused()
        => Assert.Contains("Auth:Tokens:1:Sha256 is also the Sha256 of Auth:Tokens:0", Refusal(
            ("Auth:Tokens:0:Name", "a"), ("Auth:Tokens:0:Scope", "read"), ("Auth:Tokens:0:Sha256", Hash),
            ("Auth:Tokens:1:Name", "b"), ("Auth:Tokens:1:Scope", "admin"), ("Auth:Tokens:1:Sha256", Hash.ToUpperInvariant())));

    [Fact]
    public void Misspelt_keys_and_values_are_refused_not_ignored()
    {
        Assert.Contains("Auth:AllowAnon is not a setting", Refusal(("Auth:AllowAnon", "true")));
        Assert.Contains("Auth:AllowPlainHttp must be true or false", Refusal(("Auth:AllowPlainHttp", "yes")));
        Assert.Contains("Auth:Tokens:0:Sha265 is not a token setting", Refusal(
            ("Auth:Tokens:0:Name", "a"), ("Auth:Tokens:0:Scope", "read"), ("Auth:Tokens:0:Sha256", Hash), ("Auth:Tokens:0:Sha265", Hash)));
        Assert.Contains("Auth:Tokens must be a list", Refusal(("Auth:Tokens", "x")));
    }
}
