using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace QcowActors.Api.Auth;

/// <summary>
/// Registers and places the token scheme and the scope policies, as ASP.NET Core does it:
/// AddAuthentication().AddScheme, one policy per scope, UseAuthentication/UseAuthorization. With
/// no token configured nothing is registered, so no authentication or authorisation middleware
/// runs (ASP.NET adds them only for registered services) and requests cost what they did.
/// </summary>
internal static class TokenAuthentication
{
    public static void AddTokenAuthentication(this IServiceCollection services, AuthOptions auth)
    {
        services.AddSingleton(auth);
        if (!auth.HasTokens)
            return;
        services.AddSingleton(new TokenTable(auth.Tokens, TokenAuthenticationHandler.SchemeName));
        // AddAuthentication() without its data protection (for cookies; it would create and store
        // keys at start, under a HOME a pod may not have): the core services, encoders, the scheme.
        services.AddAuthenticationCore(o => o.DefaultScheme = TokenAuthenticationHandler.SchemeName);
        services.AddWebEncoders();
        services.TryAddSingleton(TimeProvider.System);
        new AuthenticationBuilder(services)
            .AddScheme<AuthenticationSchemeOptions, TokenAuthenticationHandler>(TokenAuthenticationHandler.SchemeName, configureOptions: null);
        services.AddAuthorization(o =>
        {
            foreach (Scope scope in Scopes.TokenScopes)
                o.AddPolicy(scope.PolicyName(), p => p.RequireAuthenticatedUser().RequireClaim(Scopes.ClaimType, Scopes.Granting(scope)));
            // Whatever carries no scope — a path no endpoint matches, a wrong method's 405, an
            // endpoint mapped outside the scoped group — needs a token too. The token-less rows of
            // EndpointScopes carry AllowAnonymous.
            o.FallbackPolicy = new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build();
        });
    }

    /// <summary>Before anything routes a request elsewhere (ImageRouting), after the endpoint is chosen (routing runs first).</summary>
    public static void UseTokenAuthentication(this WebApplication app, AuthOptions auth)
    {
        if (!auth.HasTokens)
            return;
        app.UseAuthentication();
        app.UseAuthorization();
    }
}
