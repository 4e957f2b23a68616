namespace QcowActors.Testing;

/// <summary>One row of README "Authentication": a method on a route, and the scope it needs (none, ticket, read, write, admin).</summary>
public sealed record ScopeRow(string Method, string Route, string Scope)
{
    public override string ToString() => $"{Method} {Route} {Scope}";
}
