using Microsoft.OpenApi;

namespace QcowActors.Api.OpenApi;

/// <summary>
/// Endpoint annotations for the generated document. Request bodies and headers are added with
/// operation transformers rather than Accepts metadata, because Accepts also makes routing refuse
/// other Content-Types with 415, and curl's "-d"/"--data-binary" send form content types that we
/// want to accept.
/// </summary>
internal static class OpenApiConventions
{
    public const string Json = "application/json";
    public const string OctetStream = "application/octet-stream";

    public static RouteHandlerBuilder ProducesProblems(this RouteHandlerBuilder builder, params int[] statuses)
    {
        foreach (int status in statuses)
            builder.ProducesProblem(status);
        return builder;
    }

    /// <summary>Responses without a body (HEAD answers, 204).</summary>
    public static RouteHandlerBuilder ProducesEmpty(this RouteHandlerBuilder builder, params int[] statuses)
    {
        foreach (int status in statuses)
            builder.Produces(status);
        return builder;
    }

    public static RouteHandlerBuilder WithRequestBody(
        this RouteHandlerBuilder builder, Func<IOpenApiSchema> schema, string contentType = Json, bool required = true)
        => builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = required,
                Content = new Dictionary<string, OpenApiMediaType> { [contentType] = new() { Schema = schema() } },
            };
            return Task.CompletedTask;
        });

    public static RouteHandlerBuilder WithHeaderParameter(this RouteHandlerBuilder builder, string name, string description)
        => builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            operation.Parameters ??= [];
            operation.Parameters.Add(new OpenApiParameter
            {
                Name = name,
                In = ParameterLocation.Header,
                Required = false,
                Description = description,
                Schema = new OpenApiSchema { Type = JsonSchemaType.String },
            });
            return Task.CompletedTask;
        });

    public static RouteHandlerBuilder WithQueryParameter(this RouteHandlerBuilder builder, string name, string description, params string[] values)
        => builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            operation.Parameters ??= [];
            var schema = new OpenApiSchema { Type = JsonSchemaType.String };
            if (values.Length > 0)
                schema.Enum = [.. values.Select(v => (System.Text.Json.Nodes.JsonNode)v)];
            operation.Parameters.Add(new OpenApiParameter
            {
                Name = name,
                In = ParameterLocation.Query,
                Required = false,
                Description = description,
                Schema = schema,
            });
            return Task.CompletedTask;
        });

    /// <summary>Documents response headers (Content-Range, Accept-Ranges, Location, Allow) on the given statuses.</summary>
    public static RouteHandlerBuilder WithResponseHeader(this RouteHandlerBuilder builder, string name, string description, params int[] statuses)
        => builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            foreach (int status in statuses)
            {
                if (operation.Responses?.TryGetValue(status.ToString(System.Globalization.CultureInfo.InvariantCulture), out IOpenApiResponse? response) != true
                    || response is not OpenApiResponse concrete)
                    continue;
                concrete.Headers ??= new Dictionary<string, IOpenApiHeader>();
                concrete.Headers[name] = new OpenApiHeader
                {
                    Description = description,
                    Schema = new OpenApiSchema { Type = name == "Content-Length" ? JsonSchemaType.Integer : JsonSchemaType.String },
                };
            }
            return Task.CompletedTask;
        });
}
