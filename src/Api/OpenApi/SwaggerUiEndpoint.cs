namespace QcowActors.Api.OpenApi;

/// <summary>
/// Swagger UI at /swagger, served as an endpoint rather than a middleware so that it gets a scope
/// and a policy like every other endpoint (a middleware answers before authorisation runs).
/// </summary>
internal static class SwaggerUiEndpoint
{
    public const string Prefix = "swagger";

    public static void MapSwaggerUi(this IEndpointRouteBuilder routes)
    {
        IApplicationBuilder ui = routes.CreateApplicationBuilder();
        // Swagger UI serves its files with the static file middleware, which steps aside for a
        // request that has an endpoint; this one was authorised already.
        ui.Use((context, next) =>
        {
            context.SetEndpoint(null);
            return next(context);
        });
        ui.UseSwaggerUI(o =>
        {
            o.SwaggerEndpoint("/openapi/v1.json", "QcowActors v1");
            o.RoutePrefix = Prefix;
            o.DocumentTitle = "QcowActors API";
        });
        // A path under /swagger that is no file of it: 404, a problem by the status code pages.
        ui.Run(context =>
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });
        routes.MapMethods($"/{Prefix}/{{**path}}", [HttpMethods.Get, HttpMethods.Head], ui.Build()).ExcludeFromDescription();
    }
}
