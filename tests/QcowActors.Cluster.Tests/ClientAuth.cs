using System.Net.Http.Headers;

namespace QcowActors.Cluster.Tests;

/// <summary>
/// How the clients of <see cref="EdgeSecurityTests"/> authenticate, and what the nodes need for it.
/// Token authentication (Auth:Tokens, issue 14) is being built alongside forwarding; until it is in
/// the server, the nodes start without tokens and the clients send none (<see cref="None"/>). Once
/// it is, make <see cref="Current"/> a token and the node settings that admit it: every request of
/// those tests then carries it, through the node that forwards to the owner, which checks it again.
/// </summary>
internal sealed record ClientAuth(string Name, string? Token, IReadOnlyDictionary<string, string> NodeEnvironment)
{
    public static readonly ClientAuth None = new("no tokens configured", null, new Dictionary<string, string>());

    public static ClientAuth Current => None;

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
