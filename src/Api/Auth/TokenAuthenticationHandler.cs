using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using QcowActors.Api.Problems;

namespace QcowActors.Api.Auth;

/// <summary>
/// The "Token" authentication scheme: Bearer or Basic credentials checked against the
/// <see cref="TokenTable"/>. Its challenge is a 401 problem offering both schemes; its forbid a 403
/// problem naming the scope the endpoint needs and the one the token has.
/// </summary>
internal sealed class TokenAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    TokenTable tokens) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Token";
    public const string Realm = "qcowactors";

    /// <summary>Two challenges, two header values: Bearer for API clients, Basic for QEMU's curl driver and browsers.</summary>
    public static readonly StringValues Challenges = new([$"Bearer realm=\"{Realm}\"", $"Basic realm=\"{Realm}\""]);

    /// <summary>
    /// A request through a transfer ticket (<see cref="Tickets.TicketPaths"/> found the ticket and put
    /// its image's data path in place) is its ticket's holder: read or write, no token.
    /// </summary>
    private static readonly Task<AuthenticateResult> ReadTicket = Task.FromResult(AuthenticateResult.Success(TokenTable.Ticket("transfer ticket", Scope.Read, SchemeName)));
    private static readonly Task<AuthenticateResult> WriteTicket = Task.FromResult(AuthenticateResult.Success(TokenTable.Ticket("transfer ticket", Scope.Write, SchemeName)));

    protected override Task<AuthenticateResult> HandleAuthenticateAsync() => Context.Features.Get<Tickets.TicketAccess>() is { } ticket
        ? ticket.Ticket.Scope == Tickets.TicketScope.Write ? WriteTicket : ReadTicket
        : tokens.Authenticate(Request.Headers.Authorization);

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        AuthenticateResult result = await HandleAuthenticateOnceSafeAsync();
        string detail = result.Failure?.Message ?? $"{What()} needs a token{Needed()}: send \"Authorization: Bearer TOKEN\", "
            + "or Basic with any user name and the token as the password";
        Response.Headers.WWWAuthenticate = Challenges;
        await ApiProblems.Result(StatusCodes.Status401Unauthorized, detail).ExecuteAsync(Context);
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        ClaimsPrincipal? user = (await HandleAuthenticateOnceSafeAsync()).Principal;
        string detail = $"{What()} needs a token{Needed()}; token '{user?.Identity?.Name}' has scope {user?.FindFirst(Scopes.ClaimType)?.Value}";
        await ApiProblems.Result(StatusCodes.Status403Forbidden, detail).ExecuteAsync(Context);
    }

    private string What() => $"{Request.Method} {Request.Path.ToUriComponent()}";

    /// <summary>" with scope write (or admin)", from the endpoint's <see cref="EndpointScope"/>; empty for a request no endpoint matched.</summary>
    private string Needed()
    {
        if (Context.GetEndpoint()?.Metadata.GetMetadata<EndpointScope>() is not { } endpoint || !endpoint.Scope.NeedsToken())
            return "";
        string wider = string.Join(" or ", Scopes.TokenScopes.Where(s => s > endpoint.Scope).Select(s => s.Name()));
        return $" with scope {endpoint.Scope.Name()}{(wider.Length > 0 ? $" (or {wider})" : "")}";
    }
}
