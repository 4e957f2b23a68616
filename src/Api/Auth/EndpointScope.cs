namespace QcowActors.Api.Auth;

/// <summary>
/// Endpoint metadata: the scope the endpoint needs, from <see cref="EndpointScopes"/>. Read by the
/// OpenAPI document (x-scope, security) and by the 401/403 details. <see cref="Listed"/> is false
/// for an endpoint the table does not name: it then needs <see cref="Scope.Admin"/> (fail closed),
/// and a test fails.
/// </summary>
internal sealed record EndpointScope(Scope Scope, bool Listed = true);
