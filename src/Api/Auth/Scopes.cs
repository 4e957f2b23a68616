namespace QcowActors.Api.Auth;

/// <summary>Names, nesting and authorisation policies of the <see cref="Scope"/> values.</summary>
internal static class Scopes
{
    /// <summary>The claim a token's principal carries its scope in.</summary>
    public const string ClaimType = "scope";

    /// <summary>The scopes a token may be configured with.</summary>
    public static readonly Scope[] TokenScopes = [Scope.Read, Scope.Write, Scope.Admin];

    /// <summary>The word used in configuration, the README table and problem details.</summary>
    public static string Name(this Scope scope) => scope switch
    {
        Scope.None => "none",
        Scope.Ticket => "ticket",
        Scope.Read => "read",
        Scope.Write => "write",
        Scope.Admin => "admin",
        _ => throw new ArgumentOutOfRangeException(nameof(scope), scope, null),
    };

    /// <summary>Parses any scope word (case-insensitive), as the README table writes them.</summary>
    public static bool TryParse(string? text, out Scope scope)
    {
        foreach (Scope candidate in Enum.GetValues<Scope>())
        {
            if (string.Equals(text, candidate.Name(), StringComparison.OrdinalIgnoreCase))
            {
                scope = candidate;
                return true;
            }
        }
        scope = Scope.None;
        return false;
    }

    /// <summary>True for the scopes that take a token.</summary>
    public static bool NeedsToken(this Scope scope) => scope >= Scope.Read;

    /// <summary>A token of scope <paramref name="granted"/> may call an endpoint that needs <paramref name="needed"/>.</summary>
    public static bool Satisfies(this Scope granted, Scope needed) => !needed.NeedsToken() || granted >= needed;

    /// <summary>The authorisation policy an endpoint needing <paramref name="scope"/> carries.</summary>
    public static string PolicyName(this Scope scope) => "scope:" + scope.Name();

    /// <summary>The token scopes that satisfy <paramref name="needed"/>, as claim values.</summary>
    public static string[] Granting(Scope needed) => [.. TokenScopes.Where(s => s.Satisfies(needed)).Select(s => s.Name())];
}
