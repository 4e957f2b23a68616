using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace QcowActors.Api.Tickets;

/// <summary>The ticket request body, and the ticket data paths, in the OpenAPI document.</summary>
internal static class TicketSchemas
{
    public static IOpenApiSchema CreateTicketRequest() => new OpenApiSchema
    {
        Type = JsonSchemaType.Object,
        Required = new HashSet<string> { "scope" },
        Properties = new Dictionary<string, IOpenApiSchema>
        {
            ["scope"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                Enum = ["read", "write"],
                Description = "read: GET, HEAD, OPTIONS and extents of the image's data; write: also PUT and PATCH.",
            },
            ["expiresIn"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                Default = "1h",
                Description = "How long the ticket lives: \"30s\", \"10m\", \"2h\", from 1 second to 7 days.",
            },
            ["bitmap"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                Description = "A read ticket for a backup: the URL serves /images/{name}/bitmaps/{bitmap}/data, whose extents' context=dirty is this bitmap.",
            },
            ["snapshot"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                Description = "With bitmap: serve this snapshot's disk (the checkpoint) instead of the live disk.",
            },
        },
    };

    /// <summary>
    /// /tickets/{id}/data and /tickets/{id}/data/extents answer exactly as the image's data
    /// endpoints do (they are served by them): the document lists them as copies of those
    /// operations, with the ticket id for the image name and no credential.
    /// </summary>
    public static OpenApiOptions DescribeTicketPaths(this OpenApiOptions options) => options.AddDocumentTransformer((document, _, _) =>
    {
        foreach (var (from, to) in new[] { ("/images/{name}/data", "/tickets/{id}/data"), ("/images/{name}/data/extents", "/tickets/{id}/data/extents"),
                     ("/images/{name}/data/checksum", "/tickets/{id}/data/checksum"), ("/images/{name}/data/checksum/algorithms", "/tickets/{id}/data/checksum/algorithms") })
        {
            if (document.Paths?.TryGetValue(from, out var source) != true || source is not OpenApiPathItem item || item.Operations is null) continue;
            var copy = new OpenApiPathItem { Operations = new Dictionary<HttpMethod, OpenApiOperation>() };
            foreach (var (method, operation) in item.Operations)
            {
                if (method == HttpMethod.Put || method == HttpMethod.Patch || method == HttpMethod.Get || method == HttpMethod.Head || method == HttpMethod.Options)
                    copy.Operations[method] = ViaTicket(operation, write: method == HttpMethod.Put || method == HttpMethod.Patch, document);
            }
            document.Paths[to] = copy;
        }
        return Task.CompletedTask;
    });

    private static OpenApiOperation ViaTicket(OpenApiOperation operation, bool write, OpenApiDocument document)
    {
        var parameters = new List<IOpenApiParameter>
        {
            new OpenApiParameter
            {
                Name = "id",
                In = ParameterLocation.Path,
                Required = true,
                Description = "The transfer ticket's id (POST /images/{name}/tickets).",
                Schema = new OpenApiSchema { Type = JsonSchemaType.String, Pattern = "^[0-9a-f]{32}$" },
            },
        };
        parameters.AddRange((operation.Parameters ?? []).Where(p => p.Name != "name"));
        var responses = new OpenApiResponses();
        // No 401: the ticket is the credential (the image's operation lists the token's answers).
        foreach (var (status, response) in operation.Responses ?? [])
            if (status is not ("401" or "403")) responses[status] = response;
        if (write && responses.TryGetValue("400", out var problem) && problem is OpenApiResponse bad)
            responses["403"] = new OpenApiResponse { Description = "A write through a read ticket.", Content = bad.Content };
        var copy = new OpenApiOperation
        {
            OperationId = operation.OperationId is { } id ? id + "ViaTicket" : null,
            Summary = operation.Summary + " (through a transfer ticket)",
            Description = "Served as the same operation on the ticket's image; 404 once the ticket expired or was deleted, 403 for a write through a read ticket.",
            Tags = operation.Tags is { } tags ? new HashSet<OpenApiTagReference>(tags) : null,
            Parameters = parameters,
            RequestBody = operation.RequestBody,
            Responses = responses,
        };
        OpenApi.OpenApiSecurity.Describe(copy, Auth.Scope.Ticket, document);
        return copy;
    }
}
