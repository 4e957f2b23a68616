namespace QcowActors.Api.Endpoints;

/// <summary>Liveness and readiness probes.</summary>
internal static class HealthEndpoints
{
    public static void MapHealth(this IEndpointRouteBuilder routes)
    {
        RouteGroupBuilder health = routes.MapGroup("/healthz").WithTags("Health");
        health.MapGet("/live", () => Results.Text("ok"))
            .WithName("Live")
            .WithSummary("The process answers HTTP")
            .Produces<string>(StatusCodes.Status200OK, "text/plain");
        // Readiness is liveness until the store reports its own state (e.g. recovering leaked clusters).
        health.MapGet("/ready", () => Results.Text("ok"))
            .WithName("Ready")
            .WithSummary("The server takes requests")
            .Produces<string>(StatusCodes.Status200OK, "text/plain");
    }
}
