namespace QcowActors.Api.Auth;

/// <summary>One row of <see cref="EndpointScopes"/>: a method on a route pattern and the scope it needs.</summary>
/// <param name="Method">An HTTP method in upper case.</param>
/// <param name="Route">The route pattern as mapped, e.g. /images/{name}/data (see <see cref="RouteText"/>).</param>
internal readonly record struct EndpointScopeRow(string Method, string Route, Scope Scope);
