using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using QcowActors.Actors.Image;
using QcowActors.Actors.Image.Bitmaps;
using QcowActors.Actors.Service;
using QcowActors.Api.Http;
using QcowActors.Api.OpenApi;
using QcowActors.Api.Problems;

namespace QcowActors.Api.Endpoints;

/// <summary>
/// /images/{name}/bitmaps: persistent dirty bitmaps kept in the qcow2 file as QEMU keeps them, and
/// /images/{name}/bitmaps/{bitmap}/data: the disk (or, with ?snapshot=, a checkpoint) as an imageio
/// transfer URL whose extents' context=dirty is that bitmap, so unmodified imageio clients back up
/// only what changed.
/// </summary>
internal static class BitmapEndpoints
{
    /// <summary>As imageio answers for a read ticket: checksum and extents, no zero or flush.</summary>
    private static readonly ImageioEndpoints.Capabilities ReadOnlyTransfer = new(["checksum", "extents"], 8, 0);
    public const string AllowedDataMethods = "OPTIONS,GET,HEAD";

    public static void MapBitmaps(this IEndpointRouteBuilder routes)
    {
        RouteGroupBuilder bitmaps = routes.MapGroup("/images/{name}/bitmaps").WithTags("Bitmaps");

        bitmaps.MapGet("", ListAsync)
            .WithName("ListBitmaps")
            .WithSummary("List the image's persistent dirty bitmaps")
            .Produces<BitmapInfo[]>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 422, 503);

        bitmaps.MapPost("", CreateAsync)
            .WithName("CreateBitmap")
            .WithSummary("Add a persistent dirty bitmap (as qemu-img bitmap --add); with checkpoint, also a snapshot of the same name")
            .WithMetadata(RequestBodyLimit.Json)
            .WithRequestBody(OpenApiSchemas.CreateBitmapRequest)
            .Produces<BitmapInfo>(StatusCodes.Status201Created)
            .ProducesProblems(400, 404, 409, 422, 503, 507)
            .WithResponseHeader("Location", "/images/{name}/bitmaps/{bitmap} of the new bitmap.", 201);

        bitmaps.MapGet("/{bitmap}", GetAsync)
            .WithName("GetBitmap")
            .WithSummary("One bitmap")
            .Produces<BitmapInfo>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 422, 503);

        bitmaps.MapDelete("/{bitmap}", DeleteAsync)
            .WithName("DeleteBitmap")
            .WithSummary("Remove a bitmap")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblems(400, 404, 409, 422, 503, 507);

        bitmaps.MapPatch("/{bitmap}", PatchAsync)
            .WithName("PatchBitmap")
            .WithSummary("Enable or disable a bitmap ({\"enabled\"}), or clear it ({\"op\":\"clear\"})")
            .WithMetadata(RequestBodyLimit.Json)
            .WithRequestBody(OpenApiSchemas.PatchBitmapRequest)
            .Produces<BitmapInfo>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 422, 503);

        bitmaps.MapGet("/{bitmap}/data", ReadAsync)
            .WithName("ReadBitmapDisk")
            .WithSummary("Read the disk, or with ?snapshot= the checkpoint's disk (an imageio transfer URL for this bitmap)")
            .WithQueryParameter("snapshot", "Read this snapshot's disk instead (id or unique name).")
            .WithHeaderParameter("Range", "One byte range: bytes=a-b, bytes=a- or bytes=-n.")
            .Produces<Stream>(StatusCodes.Status200OK, OpenApiConventions.OctetStream)
            .Produces<Stream>(StatusCodes.Status206PartialContent, OpenApiConventions.OctetStream)
            .ProducesProblems(400, 404, 409, 416, 422, 503)
            .WithResponseHeader("Accept-Ranges", "Always \"bytes\".", 200, 206, 416)
            .WithResponseHeader("Content-Range", "bytes a-b/SIZE on 206; bytes */SIZE on 416.", 206, 416);

        bitmaps.MapMethods("/{bitmap}/data", [HttpMethods.Head], HeadAsync)
            .WithName("ProbeBitmapDisk")
            .WithSummary("Headers of the matching GET without the body")
            .WithQueryParameter("snapshot", "As for GET.")
            .ProducesEmpty(200, 206, 400, 404, 409, 416, 503);

        bitmaps.MapMethods("/{bitmap}/data", [HttpMethods.Options], OptionsAsync)
            .WithName("BitmapDiskCapabilities")
            .WithSummary("imageio capabilities of the bitmap's transfer URL (read-only: checksum, extents)")
            .Produces<ImageioEndpoints.Capabilities>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 503)
            .WithResponseHeader("Allow", $"\"{AllowedDataMethods}\"", 200);

        bitmaps.MapGet("/{bitmap}/data/extents", ExtentsAsync)
            .WithName("BitmapDiskExtents")
            .WithSummary("Extents covering the whole disk: context=dirty (default zero) is this bitmap's, in imageio's shape")
            .WithQueryParameter("context", "zero (default): {start,length,zero,hole}; dirty: {start,length,dirty,zero}.", "zero", "dirty")
            .WithQueryParameter("snapshot", "The checkpoint's disk instead (its zero extents; the bitmap's dirty bits).")
            .Produces<DirtyExtent[]>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 422, 503);

        bitmaps.MapGet("/{bitmap}/data/checksum", ChecksumAsync)
            .WithName("BitmapDiskChecksum")
            .WithSummary("Checksum of the disk, or of the checkpoint's disk, as ovirt-imageio computes it (to verify a copy)")
            .WithQueryParameter("snapshot", "The checkpoint's disk instead.")
            .WithQueryParameter("algorithm", "blake2b (default) or another of /images/{name}/data/checksum/algorithms.")
            .WithQueryParameter("block_size", "Bytes per block: a multiple of 4096 up to 16 MiB (default 4194304).")
            .Produces<ChecksumEndpoints.ChecksumResult>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 422, 503);
    }

    private static async Task<IResult> ChecksumAsync(string name, string bitmap, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        await images.RequireBitmapAsync(name, bitmap, context.RequestAborted);
        if (Snapshot(context) is not { } snapshot) return await ChecksumEndpoints.ChecksumAsync(name, context, images);
        await using SnapshotView view = await images.OpenSnapshotAsync(name, snapshot, context.RequestAborted);
        return await ChecksumEndpoints.SnapshotChecksumAsync(context, view);
    }

    private static async Task<IResult> ListAsync(string name, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        return TypedResults.Ok(await images.ListBitmapsAsync(name, context.RequestAborted));
    }

    private static async Task<IResult> GetAsync(string name, string bitmap, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        return TypedResults.Ok(await FindAsync(images, name, bitmap, context.RequestAborted));
    }

    private static async Task<BitmapInfo> FindAsync(IImageService images, string name, string bitmap, CancellationToken ct)
        => (await images.ListBitmapsAsync(name, ct)).FirstOrDefault(b => b.Name == bitmap)
           ?? throw new ImageException(ImageError.NotFound, $"image '{name}' has no bitmap named '{bitmap}'");

    private static async Task<IResult> CreateAsync(string name, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        CancellationToken ct = context.RequestAborted;
        var (document, jsonError) = await JsonBody.ReadObjectAsync(context.Request, ct);
        if (document is null)
            return ApiProblems.BadRequest(jsonError);
        string bitmap;
        long granularity = BitmapNames.DefaultGranularity;
        bool enabled = true, checkpoint = false;
        using (document)
        {
            JsonElement body = document.RootElement;
            if (JsonBody.UnknownMember(body, "name", "granularity", "enabled", "checkpoint") is { } unknown)
                return ApiProblems.BadRequest(unknown);
            if (!JsonBody.TryGet(body, "name", out JsonElement value) || value.ValueKind != JsonValueKind.String)
                return ApiProblems.BadRequest("name is required and must be a string");
            bitmap = value.GetString()!;
            if (JsonBody.TryGet(body, "granularity", out JsonElement g) && !JsonBody.TryGetWholeNumber(g, out granularity))
                return ApiProblems.BadRequest($"granularity must be a whole number of bytes, not {JsonBody.Describe(g)}");
            if (!TryGetBool(body, "enabled", ref enabled, out string? boolError) || !TryGetBool(body, "checkpoint", ref checkpoint, out boolError))
                return ApiProblems.BadRequest(boolError!);
        }
        if (BitmapNames.Validate(bitmap) is { } nameError)
            return ApiProblems.BadRequest(nameError);
        if (BitmapNames.Granularity(granularity).Error is { } granularityError)
            return ApiProblems.BadRequest(granularityError);
        BitmapInfo created = await images.AddBitmapAsync(name, bitmap, granularity, enabled, checkpoint, ct);
        return TypedResults.Created($"/images/{Uri.EscapeDataString(name)}/bitmaps/{Uri.EscapeDataString(created.Name)}", created);
    }

    private static bool TryGetBool(JsonElement body, string member, ref bool value, out string? error)
    {
        error = null;
        if (!JsonBody.TryGet(body, member, out JsonElement e)) return true;
        if (e.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            value = e.GetBoolean();
            return true;
        }
        error = $"{member} must be true or false, not {JsonBody.Describe(e)}";
        return false;
    }

    private static async Task<IResult> DeleteAsync(string name, string bitmap, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        await images.RemoveBitmapAsync(name, bitmap, context.RequestAborted);
        return TypedResults.NoContent();
    }

    private static async Task<IResult> PatchAsync(string name, string bitmap, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        CancellationToken ct = context.RequestAborted;
        var (document, jsonError) = await JsonBody.ReadObjectAsync(context.Request, ct);
        if (document is null)
            return ApiProblems.BadRequest(jsonError);
        bool? enabled = null;
        bool clear = false;
        using (document)
        {
            JsonElement body = document.RootElement;
            if (JsonBody.UnknownMember(body, "enabled", "op") is { } unknown)
                return ApiProblems.BadRequest(unknown);
            if (JsonBody.TryGet(body, "enabled", out JsonElement e))
            {
                if (e.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                    return ApiProblems.BadRequest($"enabled must be true or false, not {JsonBody.Describe(e)}");
                enabled = e.GetBoolean();
            }
            if (JsonBody.TryGet(body, "op", out JsonElement op))
            {
                if (op.ValueKind != JsonValueKind.String || op.GetString() != "clear")
                    return ApiProblems.BadRequest($"op must be \"clear\", not {JsonBody.Describe(op)}");
                clear = true;
            }
        }
        if (enabled is null && !clear)
            return ApiProblems.BadRequest("nothing to change: send {\"enabled\": true|false} or {\"op\": \"clear\"}");
        return TypedResults.Ok(await images.ChangeBitmapAsync(name, bitmap, enabled, clear, ct));
    }

    private static Task<IResult> ReadAsync(string name, string bitmap, HttpContext context, [FromServices] IImageService images, [FromServices] ILoggerFactory logs)
        => ServeAsync(name, bitmap, context, images, logs, sendBody: true);

    private static Task<IResult> HeadAsync(string name, string bitmap, HttpContext context, [FromServices] IImageService images, [FromServices] ILoggerFactory logs)
        => ServeAsync(name, bitmap, context, images, logs, sendBody: false);

    private static async Task<IResult> ServeAsync(string name, string bitmap, HttpContext context, IImageService images, ILoggerFactory logs, bool sendBody)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        CancellationToken ct = context.RequestAborted;
        await images.RequireBitmapAsync(name, bitmap, ct);
        if (Snapshot(context) is { } snapshot)
        {
            await using SnapshotView view = await images.OpenSnapshotAsync(name, snapshot, ct);
            return await DiskReadEndpoints.ServeRangeAsync(context, name, view, logs, sendBody);
        }
        await using ImageSession image = await images.OpenAsync(name, ct);
        return await DiskReadEndpoints.ServeRangeAsync(context, name, image, logs, sendBody);
    }

    private static async Task<IResult> OptionsAsync(string name, string bitmap, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        await images.RequireBitmapAsync(name, bitmap, context.RequestAborted);
        if (Snapshot(context) is { } snapshot)
            await using (await images.OpenSnapshotAsync(name, snapshot, context.RequestAborted)) { }
        context.Response.Headers.Allow = AllowedDataMethods;
        return TypedResults.Ok(ReadOnlyTransfer);
    }

    private static async Task<IResult> ExtentsAsync(string name, string bitmap, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        CancellationToken ct = context.RequestAborted;
        string? snapshot = Snapshot(context);
        switch ((string?)context.Request.Query["context"])
        {
            case null or "" or "zero":
                await images.RequireBitmapAsync(name, bitmap, ct);
                if (snapshot is null) return TypedResults.Ok(await images.GetExtentsAsync(name, ct));
                SnapshotView view = await images.OpenSnapshotAsync(name, snapshot, ct);
                await view.DisposeAsync();
                return TypedResults.Ok(view.GetExtentsAsync(ct));
            case "dirty":
                return TypedResults.Ok(await images.GetDirtyExtentsAsync(name, bitmap, snapshot, ct));
            case var other:
                return ApiProblems.BadRequest($"context '{other}' is not supported: use zero or dirty");
        }
    }

    private static string? Snapshot(HttpContext context)
        => context.Request.Query["snapshot"] is { Count: > 0 } s && !string.IsNullOrEmpty(s[0]) ? s[0] : null;
}
