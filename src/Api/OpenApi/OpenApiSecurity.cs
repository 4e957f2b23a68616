using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using QcowActors.Api.Auth;
using Scope = QcowActors.Api.Auth.Scope;

namespace QcowActors.Api.OpenApi;

/// <summary>
/// The tokens in the generated document: the bearerAuth and basicAuth schemes, and per operation
/// its scope (x-scope and a sentence in the description) and, when it needs a token, the two
/// alternative security requirements. The document is the same with tokens configured or not.
/// </summary>
internal static class OpenApiSecurity
{
    public const string BearerScheme = "bearerAuth";
    public const string BasicScheme = "basicAuth";
    public const string ScopeExtension = "x-scope";

    public static OpenApiOptions DescribeSecurity(this OpenApiOptions options) => options
        .AddDocumentTransformer((document, _, _) =>
        {
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes[BearerScheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "Authorization: Bearer TOKEN, a token of Auth:Tokens (at least 32 characters).",
            };
            document.Components.SecuritySchemes[BasicScheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "basic",
                Description = "Any user name, the token as the password (QEMU's curl driver, browsers).",
            };
            return Task.CompletedTask;
        })
        .AddOperationTransformer((operation, context, _) =>
        {
            if (context.Description.ActionDescriptor.EndpointMetadata.OfType<EndpointScope>().LastOrDefault() is not { } endpoint)
                return Task.CompletedTask;
            Describe(operation, endpoint.Scope, context.Document);
            return Task.CompletedTask;
        });

    /// <summary>x-scope, the sentence, and the security requirements of an operation needing <paramref name="scope"/>.</summary>
    public static void Describe(OpenApiOperation operation, Scope scope, OpenApiDocument? document)
    {
        operation.Extensions ??= new Dictionary<string, IOpenApiExtension>();
        operation.Extensions[ScopeExtension] = new JsonNodeExtension(JsonValue.Create(scope.Name()));
        operation.Security = scope.NeedsToken()
            ?
            [
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BearerScheme, document)] = [] },
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BasicScheme, document)] = [] },
            ]
            : [];
        string sentence = Sentence(scope);
        operation.Description = string.IsNullOrEmpty(operation.Description) ? sentence : $"{operation.Description}\n\n{sentence}";
    }

    private static string Sentence(Scope scope) => scope switch
    {
        Scope.None => "Needs no token.",
        Scope.Ticket => "Needs no token: the ticket id authorises the request.",
        Scope.Admin => "When the server has tokens, needs one with scope admin.",
        _ => $"When the server has tokens, needs one with scope {scope.Name()} or wider ({string.Join(", ", Scopes.TokenScopes.Where(s => s > scope).Select(s => s.Name()))}).",
    };
}
