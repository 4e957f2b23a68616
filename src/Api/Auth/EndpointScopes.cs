namespace QcowActors.Api.Auth;

/// <summary>
/// THE table of every endpoint and the scope it needs; README "Authentication" prints the same rows
/// (a test compares them, and another fails when an endpoint is mapped without a row here).
/// <see cref="ScopeConventions.RequireScopes"/> applies it to every endpoint ApiHost maps.
/// </summary>
internal static class EndpointScopes
{
    public static readonly IReadOnlyList<EndpointScopeRow> All =
    [
        new("GET", "/images", Scope.Read),
        new("POST", "/images", Scope.Admin),
        new("GET", "/images/{name}", Scope.Read),
        new("PATCH", "/images/{name}", Scope.Write),
        new("DELETE", "/images/{name}", Scope.Admin),
        new("POST", "/images/{name}/close", Scope.Write),
        new("GET", "/images/{name}/data", Scope.Read),
        new("HEAD", "/images/{name}/data", Scope.Read),
        new("OPTIONS", "/images/{name}/data", Scope.Read),
        new("PUT", "/images/{name}/data", Scope.Write),
        new("PATCH", "/images/{name}/data", Scope.Write),
        new("GET", "/images/{name}/data/extents", Scope.Read),
        new("GET", "/images/{name}/data/checksum", Scope.Read),
        new("GET", "/images/{name}/data/checksum/algorithms", Scope.Read),
        new("GET", "/images/{name}/snapshots", Scope.Read),
        new("POST", "/images/{name}/snapshots", Scope.Write),
        new("DELETE", "/images/{name}/snapshots/{snapshot}", Scope.Write),
        new("POST", "/images/{name}/snapshots/{snapshot}/revert", Scope.Write),
        new("GET", "/images/{name}/snapshots/{snapshot}/data", Scope.Read),
        new("GET", "/images/{name}/snapshots/{snapshot}/data/extents", Scope.Read),
        new("GET", "/images/{name}/bitmaps", Scope.Read),
        new("POST", "/images/{name}/bitmaps", Scope.Write),
        new("GET", "/images/{name}/bitmaps/{bitmap}", Scope.Read),
        new("DELETE", "/images/{name}/bitmaps/{bitmap}", Scope.Write),
        new("PATCH", "/images/{name}/bitmaps/{bitmap}", Scope.Write),
        new("GET", "/images/{name}/bitmaps/{bitmap}/data", Scope.Read),
        new("HEAD", "/images/{name}/bitmaps/{bitmap}/data", Scope.Read),
        new("OPTIONS", "/images/{name}/bitmaps/{bitmap}/data", Scope.Read),
        new("GET", "/images/{name}/bitmaps/{bitmap}/data/extents", Scope.Read),
        new("GET", "/images/{name}/bitmaps/{bitmap}/data/checksum", Scope.Read),
        // Transfer tickets (issue 14, mapped by another part of it): made and revoked with a write
        // token; their data URLs take no token, the unguessable ticket id is the authorisation.
        new("POST", "/images/{name}/tickets", Scope.Write),
        new("DELETE", "/images/{name}/tickets/{id}", Scope.Write),
        new("GET", "/tickets/{id}/data", Scope.Ticket),
        new("HEAD", "/tickets/{id}/data", Scope.Ticket),
        new("PUT", "/tickets/{id}/data", Scope.Ticket),
        new("PATCH", "/tickets/{id}/data", Scope.Ticket),
        new("OPTIONS", "/tickets/{id}/data", Scope.Ticket),
        new("GET", "/tickets/{id}/data/extents", Scope.Ticket),
        new("GET", "/tickets/{id}/data/checksum", Scope.Ticket),
        new("GET", "/tickets/{id}/data/checksum/algorithms", Scope.Ticket),
        new("GET", "/openapi/{documentName}.json", Scope.Read),
        new("GET", "/swagger/{**path}", Scope.Read),
        new("HEAD", "/swagger/{**path}", Scope.Read),
        new("GET", "/debug/engine", Scope.Admin),
        new("GET", "/healthz/live", Scope.None),
        new("HEAD", "/healthz/live", Scope.None),
        new("GET", "/healthz/ready", Scope.None),
        new("HEAD", "/healthz/ready", Scope.None),
        new("GET", "/bootstrap/seed-nodes", Scope.None),
    ];

    private static readonly Dictionary<(string Method, string Route), Scope> ByEndpoint =
        All.ToDictionary(r => (r.Method, r.Route), r => r.Scope);

    /// <summary>The scope of <paramref name="method"/> on <paramref name="route"/> (a <see cref="RouteText"/> form), if the table has it.</summary>
    public static bool TryFind(string method, string route, out Scope scope)
        => ByEndpoint.TryGetValue((method.ToUpperInvariant(), route), out scope);
}
