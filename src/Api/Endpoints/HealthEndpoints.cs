using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.OpenApi;
using QcowActors.Api.Auth;
using QcowActors.Api.OpenApi;
using Scope = QcowActors.Api.Auth.Scope;

namespace QcowActors.Api.Endpoints;

/// <summary>
/// Liveness (the actor system runs) and readiness (this node is an Up cluster member, its store is
/// there and it is not stopping), as ASP.NET health checks. Kubernetes probes them; 503 = not.
/// </summary>
internal static class HealthEndpoints
{
    public const string LiveTag = "live";
    public const string ReadyTag = "ready";

    public static void MapHealth(this IEndpointRouteBuilder routes)
    {
        // MapHealthChecks answers every method; a POST or DELETE "ok" would hide a client's mistake, so GET and HEAD only (else 405).
        routes.MapHealthChecks("/healthz/live", Options(LiveTag)).WithMetadata(new HttpMethodMetadata([HttpMethods.Get, HttpMethods.Head]));
        routes.MapHealthChecks("/healthz/ready", Options(ReadyTag)).WithMetadata(new HttpMethodMetadata([HttpMethods.Get, HttpMethods.Head]));
    }

    private static HealthCheckOptions Options(string tag) => new()
    {
        Predicate = r => r.Tags.Contains(tag),
        ResponseWriter = async (context, report) =>
        {
            context.Response.ContentType = "text/plain";
            context.Response.Headers.CacheControl = "no-store";
            await context.Response.WriteAsync(report.Status == HealthStatus.Healthy ? "ok" : "unavailable");
        },
    };

    /// <summary>Health check endpoints carry no API metadata; the document describes them here.</summary>
    public static OpenApiOptions DescribeHealth(this OpenApiOptions options) => options.AddDocumentTransformer((document, _, _) =>
    {
        document.Paths ??= [];
        document.Paths["/healthz/live"] = Probe(document, "Live", "The actor system runs");
        document.Paths["/healthz/ready"] = Probe(document, "Ready", "This node takes requests: an Up cluster member, store present, not stopping");
        return Task.CompletedTask;
    });

    private static OpenApiPathItem Probe(OpenApiDocument document, string id, string summary)
    {
        var probe = new OpenApiOperation
        {
            OperationId = id,
            Summary = summary,
            Tags = new HashSet<OpenApiTagReference> { new("Health", document) },
            Responses = new OpenApiResponses
            {
                ["200"] = Text("ok"),
                ["503"] = Text("unavailable"),
            },
        };
        // Kubernetes probes send no token: the probes answer without one, tokens or not.
        OpenApiSecurity.Describe(probe, Scope.None, document);
        return new OpenApiPathItem { Operations = new Dictionary<HttpMethod, OpenApiOperation> { [HttpMethod.Get] = probe } };
    }

    private static OpenApiResponse Text(string body) => new()
    {
        Description = body,
        Content = new Dictionary<string, OpenApiMediaType>
        {
            ["text/plain"] = new() { Schema = new OpenApiSchema { Type = JsonSchemaType.String } },
        },
    };
}
