using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Settings that must stop the server: it exits non-zero with the reason, before it listens on
/// anything (the actor system, which binds its remoting port, has not even started). And the
/// hash-token command operators make hashes with.
/// </summary>
public sealed class AuthStartTests
{
    public static TheoryData<string, string[], string> Refusals()
    {
        var tokens = AuthTokens.Environment();
        var data = new TheoryData<string, string[], string>
        {
            // case, environment (KEY=VALUE), what the output must say
            { "a token in clear", [.. Pairs(tokens), $"Auth__Tokens__4__Name=clear", "Auth__Tokens__4__Scope=read", $"Auth__Tokens__4__Token={AuthTokens.Unknown}"], "Auth:Tokens:4:Token holds a token in clear" },
            { "a hash that is no hash", ["Auth__Tokens__0__Name=a", "Auth__Tokens__0__Scope=read", "Auth__Tokens__0__Sha256=0123abc"], "Auth:Tokens:0:Sha256 must be 64 hex digits" },
            { "an unknown scope", ["Auth__Tokens__0__Name=a", "Auth__Tokens__0__Scope=root", $"Auth__Tokens__0__Sha256={AuthTokens.Sha256(AuthTokens.Read)}"], "Auth:Tokens:0:Scope must be read, write or admin" },
            { "a duplicate name", [.. Pairs(tokens), "Auth__Tokens__4__Name=Reader", "Auth__Tokens__4__Scope=read", $"Auth__Tokens__4__Sha256={AuthTokens.Sha256(AuthTokens.Unknown)}"], "is also the name of Auth:Tokens:0" },
        };
        return data;
    }

    private static string[] Pairs(Dictionary<string, string> environment) => [.. environment.Select(e => $"{e.Key}={e.Value}")];

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task Bad_auth_settings_stop_the_server_with_the_reason(string refusal, string[] environment, string reason)
    {
        string output = await RefusedStartAsync(environment, []);
        Assert.True(output.Contains(reason, StringComparison.Ordinal), $"{refusal}: the output does not say '{reason}':\n{output}");
        Assert.DoesNotContain(AuthTokens.Unknown, output);
    }

    [Fact]
    public async Task Without_tokens_a_non_loopback_url_is_refused_before_anything_listens()
    {
        int port = FreePort();
        string output = await RefusedStartAsync([], ["--urls", $"http://0.0.0.0:{port.ToString(CultureInfo.InvariantCulture)}"]);
        Assert.Contains($"http://0.0.0.0:{port.ToString(CultureInfo.InvariantCulture)} is beyond loopback and no token is configured", output);
        Assert.Contains("Auth:AllowAnonymous=true", output);
        AssertNothingListens(port);
    }

    [Fact]
    public async Task With_tokens_a_non_loopback_plain_http_url_is_refused_unless_tls_ends_in_front()
    {
        int port = FreePort();
        string output = await RefusedStartAsync(Pairs(AuthTokens.Environment()), ["--urls", $"http://0.0.0.0:{port.ToString(CultureInfo.InvariantCulture)}"]);
        Assert.Contains("is beyond loopback and not HTTPS", output);
        Assert.Contains("Auth:AllowPlainHttp=true", output);
        AssertNothingListens(port);
    }

    [Fact]
    public void Hash_token_prints_the_sha256_and_refuses_short_tokens()
    {
        ProcessResult hashed = HashToken(AuthTokens.Read + "\n");
        Assert.True(hashed.ExitCode == 0, hashed.ToString());
        Assert.Equal(AuthTokens.Sha256(AuthTokens.Read), hashed.Stdout.Trim());

        ProcessResult refused = HashToken(AuthTokens.Short + "\n");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Equal("", refused.Stdout);
        Assert.Contains("tokens are at least 32 characters", refused.Stderr);
        Assert.DoesNotContain(AuthTokens.Short, refused.Output);
    }

    private static ProcessResult HashToken(string input)
        => ProcessRunner.Run("dotnet", [RepositoryLayout.ServerDll, "hash-token"], new ProcessRunOptions
        {
            Stdin = Encoding.UTF8.GetBytes(input),
            Timeout = TimeSpan.FromMinutes(1),
        });

    /// <summary>Starts the server, which must exit non-zero before it is live; returns its output.</summary>
    private static async Task<string> RefusedStartAsync(string[] environment, string[] arguments)
    {
        var options = new ServerOptions
        {
            Environment = environment.Select(e => e.Split('=', 2)).ToDictionary(p => p[0], p => p[1]),
            Arguments = arguments,
            StartTimeout = TimeSpan.FromSeconds(60),
        };
        var e = await Assert.ThrowsAsync<ServerStartException>(() => ServerProcess.StartAsync(options));
        Assert.Contains("exited with code 1 before it was live", e.Message);
        Assert.Contains("QcowActors did not start", e.Message);
        // The refusal comes while the host is built: the actor system never started, so its
        // remoting port was never bound either.
        Assert.DoesNotContain("Starting remoting", e.Message);
        return e.Message;
    }

    private static void AssertNothingListens(int port)
    {
        using var client = new TcpClient();
        Assert.ThrowsAny<SocketException>(() => client.Connect(IPAddress.Loopback, port));
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Any, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }
}
