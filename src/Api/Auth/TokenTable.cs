using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Primitives;

namespace QcowActors.Api.Auth;

/// <summary>
/// The configured tokens' digests, and the one check a request's Authorization header gets: the
/// presented token hashed once (SHA-256, on the stack) and compared with every digest in constant
/// time. The results — one per token, one per refusal — are built once, so a request allocates
/// nothing here. The failure messages are the 401 details, and never contain what was presented.
/// </summary>
internal sealed class TokenTable
{
    public const int DigestBytes = 32;

    private readonly byte[][] _digests;
    private readonly Task<AuthenticateResult>[] _accepted;

    private static readonly Task<AuthenticateResult> Absent = Task.FromResult(AuthenticateResult.NoResult());
    private static readonly Task<AuthenticateResult> Several = Fail("send one Authorization header, not several");
    private static readonly Task<AuthenticateResult> Unsupported =
        Fail("the Authorization scheme is not accepted: send \"Authorization: Bearer TOKEN\", or Basic with any user name and the token as the password");
    private static readonly Task<AuthenticateResult> Malformed =
        Fail("Basic credentials must be the base64 of USER:TOKEN in UTF-8 (any user name, the token as the password)");
    private static readonly Task<AuthenticateResult> EmptyToken = Fail("the Authorization header carries no token");
    private static readonly Task<AuthenticateResult> TooLong = Fail($"tokens are at most {TokenRules.MaxChars} characters (and at least {TokenRules.MinChars})");
    private static readonly Task<AuthenticateResult> TooShort =
        Fail($"tokens are at least {TokenRules.MinChars} characters: shorter ones are refused whatever is configured");
    private static readonly Task<AuthenticateResult> Unknown = Fail("the token is not one this server accepts");

    public TokenTable(IReadOnlyList<TokenOptions> tokens, string scheme)
    {
        Tokens = [.. tokens.Select(t => (t.Name!, Enum.Parse<Scope>(t.Scope!, ignoreCase: true)))];
        _digests = [.. tokens.Select(t => Convert.FromHexString(t.Sha256!))];
        _accepted = [.. Tokens.Select(t => Task.FromResult(AuthenticateResult.Success(Ticket(t.Name, t.Scope, scheme))))];
    }

    /// <summary>Name and scope of every token, in configuration order.</summary>
    public IReadOnlyList<(string Name, Scope Scope)> Tokens { get; }

    /// <summary>The request's result: a token's ticket, no result without a header, or a failure saying why.</summary>
    public Task<AuthenticateResult> Authenticate(StringValues authorization)
    {
        if (authorization.Count == 0)
            return Absent;
        if (authorization.Count > 1)
            return Several;
        Span<byte> buffer = stackalloc byte[AuthorizationHeader.BufferBytes];
        try
        {
            var presented = AuthorizationHeader.Read(authorization[0], buffer, out Range token, out int chars);
            return presented switch
            {
                PresentedCredentials.Token when chars < TokenRules.MinChars => TooShort,
                PresentedCredentials.Token => Find(buffer[token]) is int index and >= 0 ? _accepted[index] : Unknown,
                PresentedCredentials.Empty => EmptyToken,
                PresentedCredentials.TooLong => TooLong,
                PresentedCredentials.MalformedBasic => Malformed,
                _ => Unsupported,
            };
        }
        finally
        {
            // The token's bytes do not outlive the check, not even on the stack.
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    /// <summary>
    /// The index of the token whose digest matches, or -1. Every digest is compared, each in
    /// constant time: the time taken says nothing about how close the token came to any of them.
    /// </summary>
    internal int Find(ReadOnlySpan<byte> token)
    {
        Span<byte> digest = stackalloc byte[DigestBytes];
        SHA256.HashData(token, digest);
        int found = -1;
        for (int i = 0; i < _digests.Length; i++)
        {
            if (CryptographicOperations.FixedTimeEquals(digest, _digests[i]))
                found = i;
        }
        return found;
    }

    internal static AuthenticationTicket Ticket(string name, Scope scope, string scheme)
    {
        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, name), new Claim(Scopes.ClaimType, scope.Name())], scheme);
        return new AuthenticationTicket(new ClaimsPrincipal(identity), scheme);
    }

    private static Task<AuthenticateResult> Fail(string detail) => Task.FromResult(AuthenticateResult.Fail(detail));
}
