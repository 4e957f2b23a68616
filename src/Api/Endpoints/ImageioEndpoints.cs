using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Mvc;
using QcowActors.Actors.Service;
using QcowActors.Api.Http;
using QcowActors.Api.OpenApi;
using QcowActors.Api.Problems;

namespace QcowActors.Api.Endpoints;

/// <summary>
/// The parts of oVirt imageio's transfer protocol beyond GET/PUT: OPTIONS (capabilities), PATCH
/// (zero, flush) and /extents. Backup tools embedding imageio's client talk to these.
/// </summary>
internal static class ImageioEndpoints
{
    /// <summary>Methods of /images/{name}/data, as imageio lists them in Allow.</summary>
    public const string AllowedMethods = "OPTIONS,GET,HEAD,PUT,PATCH";

    /// <summary>
    /// The OPTIONS body. No "unix_socket" member: a local imageio client would switch to that socket.
    /// max_writers 8: imageio's client uses up to 4 connections; writers to different ranges are
    /// serialised per L2 table by the engine, not per image.
    /// </summary>
    internal sealed record Capabilities(
        [property: JsonPropertyName("features")] string[] Features,
        [property: JsonPropertyName("max_readers")] int MaxReaders,
        [property: JsonPropertyName("max_writers")] int MaxWriters);

    private static readonly Capabilities Offered = new(["extents", "zero", "flush", "checksum"], 8, 8);

    public static void MapImageio(this IEndpointRouteBuilder routes)
    {
        routes.MapMethods("/images/{name}/data", [HttpMethods.Options], OptionsAsync)
            .WithName("DiskCapabilities")
            .WithTags("Disk data")
            .WithSummary("imageio capabilities of the transfer URL")
            .Produces<Capabilities>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 503)
            .WithResponseHeader("Allow", $"\"{AllowedMethods}\"", 200);

        routes.MapPatch("/images/{name}/data", PatchAsync)
            .WithName("PatchDisk")
            .WithTags("Disk data")
            .WithSummary("imageio operations: zero a range, or flush")
            .WithMetadata(RequestBodyLimit.Json)
            .WithRequestBody(OpenApiSchemas.PatchRequest)
            .ProducesEmpty(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 413, 416, 422, 503, 507)
            .WithResponseHeader("Content-Range", "bytes */SIZE on 416.", 416);

        routes.MapGet("/images/{name}/data/extents", ExtentsAsync)
            .WithName("DiskExtents")
            .WithTags("Disk data")
            .WithSummary("Zero/data extents covering the whole disk")
            .WithQueryParameter("context", "zero (default): {start,length,zero,hole}. dirty: the bitmap= bitmap's {start,length,dirty,zero} (404 without bitmap=).", "zero", "dirty")
            .WithQueryParameter("bitmap", "With context=dirty: the persistent bitmap whose dirty extents are listed.")
            .Produces<DiskExtent[]>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 422, 503);
    }

    private static async Task<IResult> OptionsAsync(string name, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        // The image exists and opens.
        await using (images.OpenRawAsync(name, context.RequestAborted) is { } raw ? await raw : await images.OpenAsync(name, context.RequestAborted)) { }
        context.Response.Headers.Allow = AllowedMethods;
        return TypedResults.Ok(Offered);
    }

    private static async Task<IResult> PatchAsync(string name, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        CancellationToken ct = context.RequestAborted;
        var (document, jsonError) = await JsonBody.ReadObjectAsync(context.Request, ct);
        if (document is null)
            return ApiProblems.BadRequest(jsonError);
        PatchRequest? patch;
        using (document)
        {
            if (!PatchRequest.TryParse(document.RootElement, out patch, out error))
                return ApiProblems.BadRequest(error);
        }

        await using ImageSession image = await images.OpenAsync(name, ct);
        if (patch!.Op == PatchOperation.Zero)
        {
            long size = image.VirtualSize;
            if (patch.Offset > size || patch.Size > size - patch.Offset)
                return ApiProblems.RangeNotSatisfiable(context.Response, size,
                    $"zeroing {patch.Size} bytes at offset {patch.Offset} goes past the end of the disk ({size} bytes)");
            if (patch.Size > 0)
                await image.ZeroAsync(patch.Offset, patch.Size, ct);
        }
        if (patch.Flush)
            await image.FlushAsync(ct);
        return Results.Ok();
    }

    private static async Task<IResult> ExtentsAsync(string name, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        string? extentContext = context.Request.Query["context"];
        switch (extentContext)
        {
            case null or "" or "zero":
                break;
            case "dirty":
                if (context.Request.Query["bitmap"] is { Count: > 0 } bitmap && !string.IsNullOrEmpty(bitmap[0]))
                    return TypedResults.Ok(await images.GetDirtyExtentsAsync(name, bitmap[0]!, null, context.RequestAborted));
                // As imageio answers a ticket without a dirty bitmap: backup tools then fall back to a full copy.
                return ApiProblems.Result(StatusCodes.Status404NotFound,
                    "dirty extents need a bitmap: add bitmap=NAME, or use /images/{name}/bitmaps/{bitmap}/data as the transfer URL");
            default:
                return ApiProblems.BadRequest($"context '{extentContext}' is not supported: use zero");
        }
        // Streamed: the JSON array is written as the tables are read, so its size never sits in memory.
        IAsyncEnumerable<DiskExtent> extents = await images.GetExtentsAsync(name, context.RequestAborted);
        return TypedResults.Ok(extents);
    }
}
