using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using QcowActors.Actors.Cluster;
using QcowActors.Actors.Service;
using QcowActors.Api.Http;
using QcowActors.Api.OpenApi;
using QcowActors.Api.Problems;

namespace QcowActors.Api.Tickets;

/// <summary>
/// POST /images/{name}/tickets and DELETE /images/{name}/tickets/{id}: transfer tickets for one
/// image (see <see cref="TransferTicket"/>); the ticket's data URL is /tickets/{id}/data.
/// </summary>
internal static class TicketEndpoints
{
    public static readonly TimeSpan DefaultLifetime = TimeSpan.FromHours(1);

    public static void MapTickets(this IEndpointRouteBuilder routes)
    {
        RouteGroupBuilder tickets = routes.MapGroup("/images/{name}/tickets").WithTags("Tickets");

        tickets.MapPost("", CreateAsync)
            .WithName("CreateTicket")
            .WithSummary("Hand out a transfer ticket: /tickets/{id}/data serves this image's data to whoever holds the id, with no other credential, until it expires or is deleted")
            .WithMetadata(RequestBodyLimit.Json)
            .WithRequestBody(TicketSchemas.CreateTicketRequest)
            .Produces<CreatedTicket>(StatusCodes.Status201Created)
            .ProducesProblems(400, 404, 503)
            .WithResponseHeader("Location", "/images/{name}/tickets/{id}: DELETE it when the transfer is done.", 201);

        tickets.MapDelete("/{id}", DeleteAsync)
            .WithName("DeleteTicket")
            .WithSummary("End a transfer ticket: its data URL answers 404 from now on")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblems(400, 404);
    }

    /// <summary>The answer to POST .../tickets: the id is the credential; url the path to use it on.</summary>
    public sealed record CreatedTicket(string Id, string Url, DateTimeOffset Expires, string Image, string Scope, string? Bitmap = null, string? Snapshot = null);

    private static async Task<IResult> CreateAsync(string name, HttpContext context, [FromServices] IImageService images, [FromServices] TicketStore tickets)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        CancellationToken ct = context.RequestAborted;
        var (document, jsonError) = await JsonBody.ReadObjectAsync(context.Request, ct);
        if (document is null)
            return ApiProblems.BadRequest(jsonError);
        TicketScope scope;
        TimeSpan lifetime;
        string? bitmap, snapshot;
        using (document)
        {
            if (!TryParse(document.RootElement, out scope, out lifetime, out bitmap, out snapshot, out string parseError))
                return ApiProblems.BadRequest(parseError);
        }
        await images.GetInfoAsync(name, ct); // 404 for an image that does not exist
        if (bitmap is not null)
        {
            // 404 for a bitmap (or checkpoint) that does not exist; the ticket's requests check it again.
            if (!(await images.ListBitmapsAsync(name, ct)).Any(b => b.Name == bitmap))
                return ApiProblems.Result(StatusCodes.Status404NotFound, $"image '{name}' has no bitmap named '{bitmap}'");
            if (snapshot is not null) await using ((await images.OpenSnapshotAsync(name, snapshot, ct))) { }
        }
        var (id, ticket) = await tickets.CreateAsync(name, scope, lifetime, ct, bitmap, snapshot);
        string scopeName = scope.ToString().ToLowerInvariant();
        return TypedResults.Created($"/images/{Uri.EscapeDataString(name)}/tickets/{id}",
            new CreatedTicket(id, $"/tickets/{id}/data", ticket.Expires, name, scopeName, bitmap, snapshot));
    }

    private static async Task<IResult> DeleteAsync(string name, string id, HttpContext context, [FromServices] TicketStore tickets)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        return await tickets.DeleteAsync(name, id, context.RequestAborted)
            ? TypedResults.NoContent()
            : ApiProblems.Result(StatusCodes.Status404NotFound, $"image '{name}' has no transfer ticket with that id (it expired, was deleted, or never existed)");
    }

    internal static bool TryParse(JsonElement body, out TicketScope scope, out TimeSpan lifetime, out string? bitmap, out string? snapshot, out string error)
    {
        scope = TicketScope.Read;
        lifetime = DefaultLifetime;
        bitmap = snapshot = null;
        error = "";
        if (JsonBody.UnknownMember(body, "scope", "expiresIn", "bitmap", "snapshot") is { } unknown)
        {
            error = unknown;
            return false;
        }
        if (JsonBody.TryGet(body, "bitmap", out JsonElement bitmapValue))
        {
            bitmap = bitmapValue.GetStringOrNull();
            if (bitmap is null || Actors.Image.Bitmaps.BitmapNames.Validate(bitmap) is { } bitmapError)
            {
                error = $"bitmap must name one of the image's bitmaps: {(bitmap is null ? $"not {JsonBody.Describe(bitmapValue)}" : Actors.Image.Bitmaps.BitmapNames.Validate(bitmap))}";
                return false;
            }
        }
        if (JsonBody.TryGet(body, "snapshot", out JsonElement snapshotValue))
        {
            snapshot = snapshotValue.GetStringOrNull();
            if (bitmap is null || string.IsNullOrEmpty(snapshot))
            {
                error = "snapshot (a non-empty string) goes with bitmap: the ticket then serves that checkpoint's disk with the bitmap's dirty extents";
                return false;
            }
        }
        if (!JsonBody.TryGet(body, "scope", out JsonElement scopeValue) || scopeValue.GetStringOrNull() is not ("read" or "write"))
        {
            error = "scope is required: \"read\" (GET, HEAD, OPTIONS, extents) or \"write\" (also PUT and PATCH)";
            return false;
        }
        scope = scopeValue.GetString() == "write" ? TicketScope.Write : TicketScope.Read;
        if (scope == TicketScope.Write && bitmap is not null)
        {
            error = "a bitmap's ticket is for reading (a backup): scope must be \"read\"";
            return false;
        }
        if (JsonBody.TryGet(body, "expiresIn", out JsonElement expiresValue))
        {
            if (!Duration.TryParse(expiresValue.GetStringOrNull(), out lifetime) || lifetime < TimeSpan.FromSeconds(1) || lifetime > TicketStore.MaxLifetime)
            {
                error = $"expiresIn must be a duration from 1s to {TicketStore.MaxLifetime.TotalDays:0} days such as \"10m\", \"2h\" or \"30s\", not {JsonBody.Describe(expiresValue)}";
                return false;
            }
        }
        return true;
    }

    private static string? GetStringOrNull(this JsonElement value) => value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
