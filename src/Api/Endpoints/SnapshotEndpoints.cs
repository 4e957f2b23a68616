using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using QcowActors.Actors.Service;
using QcowActors.Api.Http;
using QcowActors.Api.OpenApi;
using QcowActors.Api.Problems;

namespace QcowActors.Api.Endpoints;

/// <summary>
/// /images/{name}/snapshots: internal snapshots, addressed by id or unique name. Create, delete and
/// revert briefly close the image (requests meanwhile wait, then see the new state); listing and
/// reading a snapshot do not.
/// </summary>
internal static class SnapshotEndpoints
{
    public static void MapSnapshots(this IEndpointRouteBuilder routes)
    {
        RouteGroupBuilder snapshots = routes.MapGroup("/images/{name}/snapshots").WithTags("Snapshots");

        snapshots.MapGet("", ListAsync)
            .WithName("ListSnapshots")
            .WithSummary("List the image's internal snapshots")
            .Produces<SnapshotInfo[]>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 422, 503);

        snapshots.MapPost("", CreateAsync)
            .WithName("CreateSnapshot")
            .WithSummary("Take an internal snapshot of the disk (as qemu-img snapshot -c)")
            .WithMetadata(RequestBodyLimit.Json)
            .WithRequestBody(OpenApiSchemas.CreateSnapshotRequest)
            .Produces<SnapshotInfo>(StatusCodes.Status201Created)
            .ProducesProblems(400, 404, 409, 422, 503, 507)
            .WithResponseHeader("Location", "/images/{name}/snapshots/{id} of the new snapshot.", 201);

        snapshots.MapDelete("/{snapshot}", DeleteAsync)
            .WithName("DeleteSnapshot")
            .WithSummary("Delete a snapshot (by id or unique name)")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblems(400, 404, 409, 422, 503, 507);

        snapshots.MapPost("/{snapshot}/revert", RevertAsync)
            .WithName("RevertSnapshot")
            .WithSummary("Make the disk the snapshot's: contents and size (as qemu-img snapshot -a)")
            .Produces<ImageInfo>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 422, 503, 507);

        snapshots.MapGet("/{snapshot}/data", ReadAsync)
            .WithName("ReadSnapshot")
            .WithSummary("Read the snapshot's disk (whole, or one byte range), read-only")
            .WithHeaderParameter("Range", "One byte range: bytes=a-b, bytes=a- or bytes=-n. Several ranges are answered with 416.")
            .Produces<Stream>(StatusCodes.Status200OK, OpenApiConventions.OctetStream)
            .Produces<Stream>(StatusCodes.Status206PartialContent, OpenApiConventions.OctetStream)
            .ProducesProblems(400, 404, 409, 416, 422, 503)
            .WithResponseHeader("Accept-Ranges", "Always \"bytes\".", 200, 206, 416)
            .WithResponseHeader("Content-Length", "Bytes in the body: the snapshot's disk size, or the range length.", 200, 206)
            .WithResponseHeader("Content-Range", "bytes a-b/SIZE on 206; bytes */SIZE on 416.", 206, 416);

        snapshots.MapGet("/{snapshot}/data/extents", ExtentsAsync)
            .WithName("SnapshotExtents")
            .WithSummary("Zero/data extents covering the snapshot's whole disk")
            .Produces<DiskExtent[]>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 422, 503);
    }

    private static async Task<IResult> ListAsync(string name, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        return TypedResults.Ok(await images.ListSnapshotsAsync(name, context.RequestAborted));
    }

    private static async Task<IResult> CreateAsync(string name, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        CancellationToken ct = context.RequestAborted;
        var (document, jsonError) = await JsonBody.ReadObjectAsync(context.Request, ct);
        if (document is null)
            return ApiProblems.BadRequest(jsonError);
        string snapshotName;
        using (document)
        {
            JsonElement body = document.RootElement;
            if (JsonBody.UnknownMember(body, "name") is { } unknown)
                return ApiProblems.BadRequest(unknown);
            if (!JsonBody.TryGet(body, "name", out JsonElement value) || value.ValueKind != JsonValueKind.String)
                return ApiProblems.BadRequest("name is required and must be a string");
            snapshotName = value.GetString()!;
        }
        if (QcowActors.Format.SnapshotNames.Validate(snapshotName) is { } nameError)
            return ApiProblems.BadRequest(nameError);
        SnapshotInfo created = await images.CreateSnapshotAsync(name, snapshotName, ct);
        return TypedResults.Created($"/images/{Uri.EscapeDataString(name)}/snapshots/{Uri.EscapeDataString(created.Id)}", created);
    }

    private static async Task<IResult> DeleteAsync(string name, string snapshot, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        await images.DeleteSnapshotAsync(name, snapshot, context.RequestAborted);
        return TypedResults.NoContent();
    }

    private static async Task<IResult> RevertAsync(string name, string snapshot, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        return TypedResults.Ok(await images.RevertSnapshotAsync(name, snapshot, context.RequestAborted));
    }

    private static async Task<IResult> ReadAsync(string name, string snapshot, HttpContext context, [FromServices] IImageService images,
        [FromServices] ILoggerFactory logs)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        await using SnapshotView view = await images.OpenSnapshotAsync(name, snapshot, context.RequestAborted);
        return await DiskReadEndpoints.ServeRangeAsync(context, name, view, logs, sendBody: true);
    }

    private static async Task<IResult> ExtentsAsync(string name, string snapshot, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        // The view is checked now (404/409/422 before any byte), then streamed table by table; the
        // enumeration holds its own gate entry, so the view's first one is returned here.
        SnapshotView view = await images.OpenSnapshotAsync(name, snapshot, context.RequestAborted);
        await view.DisposeAsync();
        return TypedResults.Ok(view.GetExtentsAsync(context.RequestAborted));
    }
}
