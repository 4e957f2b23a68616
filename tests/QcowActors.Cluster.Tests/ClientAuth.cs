using System.Net.Http.Headers;

namespace QcowActors.Cluster.Tests;

/// <summary>
/// How the clients of <see cref="EdgeSecurityTests"/> authenticate, and what the nodes need for it.
/// With <see cref="AdminToken"/> every request of those tests carries a token through the node that
/// forwards it to the owner, which checks it again (a forwarder that dropped it would get 401s).
/// </summary>
internal sealed record ClientAuth(string Name, string? Token, IReadOnlyDictionary<string, string> NodeEnvironment)
{
    public static readonly ClientAuth None = new("no tokens configured", null, new Dictionary<string, string>());

    /// <summary>Every node admits one admin token (its hash in Auth:Tokens); the clients send it.</summary>
    public static ClientAuth AdminToken { get; } = MakeToken();

    /// <summary>The edge tests run with tokens; the scenario cluster (forwarding under load) runs without: both ways are covered.</summary>
    public static ClientAuth Current => AdminToken;

    private static ClientAuth MakeToken()
    {
        string token = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        string hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(token)));
        return new("an admin token", token, new Dictionary<string, string>
        {
            ["Auth__Tokens__0__Name"] = "edge",
            ["Auth__Tokens__0__Scope"] = "admin",
            ["Auth__Tokens__0__Sha256"] = hash,
        });
    }

    /// <summary>A client of <paramref name="baseUrl"/> that sends <see cref="Token"/>, if any, with every request.</summary>
    public HttpClient ClientFor(string baseUrl)
    {
        var client = new HttpClient { BaseAddress = new Uri(baseUrl.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(60) };
        if (Token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        }
        return client;
    }
}
