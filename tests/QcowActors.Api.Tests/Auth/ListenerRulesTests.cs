using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using QcowActors.Actors.Service;
using QcowActors.Api.Auth;
using Xunit;

namespace QcowActors.Api.Tests.Auth;

/// <summary>Where the server may listen, decided from configuration before anything binds.</summary>
public sealed class ListenerRulesTests
{
    private static readonly AuthOptions NoTokens = new();
    private static readonly AuthOptions Tokens = new() { Tokens = [new TokenOptions { Name = "a", Scope = "read", Sha256 = new string('0', 64) }] };

    [Theory]
    [InlineData("http://127.0.0.1:8080", true)]
    [InlineData("http://127.8.9.10:8080", true)]
    [InlineData("http://localhost:8080", true)]
    [InlineData("http://LOCALHOST", true)]
    [InlineData("http://[::1]:8080", true)]
    [InlineData("http://unix:/run/qcowactors.sock", true)]
    [InlineData("http://0.0.0.0:8080", false)]
    [InlineData("http://[::]:8080", false)]
    [InlineData("http://*:8080", false)]
    [InlineData("http://+:8080", false)]
    [InlineData("http://10.1.2.3:8080", false)]
    [InlineData("http://127.0.0.2.example.com:8080", false)]
    [InlineData("http://myhost:8080", false)]
    [InlineData("http://[::ffff:10.0.0.1]:8080", false)]
    [InlineData("https://0.0.0.0:8443", false)]
    public void Loopback_is_127_0_0_0_8_ipv6_loopback_localhost_and_unix_sockets(string url, bool loopback)
        => Assert.Equal(loopback, ListenerRules.IsLoopback(url));

    [Fact]
    public void Loopback_is_always_allowed()
    {
        Assert.Empty(ListenerRules.Check(["http://127.0.0.1:8080", "http://[::1]:1", "http://localhost:2"], NoTokens));
        Assert.Empty(ListenerRules.Check(["http://127.0.0.1:8080"], Tokens));
    }

    [Fact]
    public void Without_tokens_beyond_loopback_needs_allow_anonymous_and_warns()
    {
        var refused = Assert.Throws<OptionsValidationException>(() => ListenerRules.Check(["http://127.0.0.1:1", "http://0.0.0.0:8080"], NoTokens));
        Assert.Contains("http://0.0.0.0:8080 is beyond loopback and no token is configured", refused.Message);
        Assert.Contains("Auth:AllowAnonymous=true", refused.Message);
        var warning = Assert.Single(ListenerRules.Check(["http://0.0.0.0:8080"], new AuthOptions { AllowAnonymous = true }));
        Assert.Contains("WITHOUT authentication", warning);
    }

    [Fact]
    public void With_tokens_beyond_loopback_needs_https_or_allow_plain_http()
    {
        var refused = Assert.Throws<OptionsValidationException>(() => ListenerRules.Check(["http://10.0.0.5:8080"], Tokens));
        Assert.Contains("not HTTPS", refused.Message);
        Assert.Contains("Kestrel:Certificates:Default:Path", refused.Message);
        Assert.Contains("Auth:AllowPlainHttp=true", refused.Message);
        Assert.Empty(ListenerRules.Check(["https://0.0.0.0:8443"], Tokens));
        var plain = new AuthOptions { AllowPlainHttp = true, Tokens = Tokens.Tokens };
        Assert.Contains("TLS must end in front", Assert.Single(ListenerRules.Check(["http://0.0.0.0:8080"], plain)));
        // AllowAnonymous says nothing about tokens in clear.
        Assert.Throws<OptionsValidationException>(() => ListenerRules.Check(["http://0.0.0.0:8080"],
            new AuthOptions { AllowAnonymous = true, Tokens = Tokens.Tokens }));
    }

    [Fact]
    public void Listeners_come_from_urls_ports_and_kestrel_endpoints()
    {
        IConfiguration config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["urls"] = "http://127.0.0.1:1; http://0.0.0.0:2",
            ["http_ports"] = "8080",
            ["Kestrel:Endpoints:Public:Url"] = "https://0.0.0.0:8443",
        }).Build();
        Assert.Equal(["http://127.0.0.1:1", "http://0.0.0.0:2", "https://0.0.0.0:8443"], ListenerRules.Listeners(config));
        IConfiguration portsOnly = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["http_ports"] = "8080;8081",
            ["https_ports"] = "8443",
        }).Build();
        Assert.Equal(["http://*:8080", "http://*:8081", "https://*:8443"], ListenerRules.Listeners(portsOnly));
    }

    [Fact]
    public void The_cluster_management_listener_is_checked_too()
    {
        var refused = Assert.Throws<OptionsValidationException>(() => ApiHost.Build(
            ["--urls=http://127.0.0.1:0", "--Cluster:Discovery=config", "--Cluster:DiscoveryEndpoints:0=127.0.0.1:1", "--Cluster:ManagementBindHostname=0.0.0.0", "--Cluster:ManagementPort=1"],
            s => s.AddQcowStore()));
        Assert.Contains("http://0.0.0.0:1 is beyond loopback", refused.Message);
    }

    [Fact]
    public async Task A_refused_listener_stops_the_build_before_anything_binds()
    {
        var refused = Assert.Throws<OptionsValidationException>(() => ApiHost.Build(["--urls=http://0.0.0.0:0"], s => s.AddQcowStore()));
        Assert.Contains("no token is configured", refused.Message);
        await using WebApplication allowed = ApiHost.Build(["--urls=http://0.0.0.0:0", "--Auth:AllowAnonymous=true"], s => s.AddQcowStore());
    }
}
