using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;
using QcowActors.Api.Problems;

namespace QcowActors.Api.Auth;

/// <summary>Applies <see cref="EndpointScopes"/> to every endpoint of a route group.</summary>
internal static class ScopeConventions
{
    /// <summary>
    /// Every endpoint mapped in <paramref name="group"/> gets its <see cref="EndpointScope"/> and,
    /// when it needs a token, 401 and 403 problem responses in the document. With
    /// <paramref name="enforce"/> (tokens are configured) it also gets the scope's authorisation
    /// policy — RequireAuthorization(policy) — or AllowAnonymous for the token-less rows (the
    /// fallback policy asks every other request for a token). Without tokens no authorisation
    /// metadata is added, so no authorisation middleware is needed and requests cost what they did.
    /// </summary>
    public static TBuilder RequireScopes<TBuilder>(this TBuilder group, bool enforce) where TBuilder : IEndpointConventionBuilder
    {
        // Finally: after the endpoint's own conventions, so the methods (MapHealthChecks adds them
        // with WithMetadata) and everything else are known.
        group.Finally(builder =>
        {
            if (builder is not RouteEndpointBuilder endpoint)
                return;
            EndpointScope scope = Find(endpoint);
            builder.Metadata.Add(scope);
            if (scope.Scope.NeedsToken())
            {
                bool headOnly = Methods(endpoint) is [var only] && only == HttpMethods.Head;
                foreach (int status in (int[])[StatusCodes.Status401Unauthorized, StatusCodes.Status403Forbidden])
                    builder.Metadata.Add(headOnly
                        ? new ProducesResponseTypeMetadata(status, typeof(void))
                        : new ProducesResponseTypeMetadata(status, typeof(ProblemDetails), [ApiProblems.ContentType]));
                if (enforce)
                    builder.Metadata.Add(new AuthorizeAttribute(scope.Scope.PolicyName()));
            }
            else if (enforce)
            {
                builder.Metadata.Add(new AllowAnonymousAttribute());
            }
        });
        return group;
    }

    /// <summary>The widest scope any of the endpoint's methods needs; Admin, unlisted, when one has no row.</summary>
    private static EndpointScope Find(RouteEndpointBuilder endpoint)
    {
        string route = RouteText.Of(endpoint.RoutePattern);
        Scope widest = Scope.None;
        foreach (string method in Methods(endpoint))
        {
            if (!EndpointScopes.TryFind(method, route, out Scope scope))
                return new EndpointScope(Scope.Admin, Listed: false);
            if (scope > widest)
                widest = scope;
        }
        return new EndpointScope(widest);
    }

    /// <summary>The methods routing matches the endpoint for; "*" when it takes any method.</summary>
    internal static IReadOnlyList<string> Methods(EndpointBuilder endpoint)
        => endpoint.Metadata.OfType<IHttpMethodMetadata>().LastOrDefault()?.HttpMethods is { Count: > 0 } methods ? [.. methods] : ["*"];
}
