using Microsoft.AspNetCore.Mvc;
using QcowActors.Actors.Service;
using QcowActors.Api.Http;
using QcowActors.Api.OpenApi;
using QcowActors.Api.Problems;

namespace QcowActors.Api.Endpoints;

/// <summary>GET and HEAD /images/{name}/data: the virtual disk, with single byte ranges (RFC 9110 §14).</summary>
internal static class DiskReadEndpoints
{
    /// <summary>
    /// Largest range mapped by one plan. Range GETs from QEMU (~2 MiB) and imageio (≤128 MiB) fit in
    /// one, so their mapping errors are problem responses; a whole-disk GET of a terabyte image is
    /// mapped a segment at a time so the mapping's memory and read lease stay bounded, and a mapping
    /// error in a later segment aborts the connection like an I/O error would.
    /// </summary>
    internal const long PlanSegment = 1L << 30;

    public static void MapDiskRead(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/images/{name}/data", GetAsync)
            .WithName("ReadDisk")
            .WithTags("Disk data")
            .WithSummary("Read the virtual disk (whole, or one byte range)")
            .WithHeaderParameter("Range", "One byte range: bytes=a-b, bytes=a- or bytes=-n. Several ranges are answered with 416.")
            .Produces<Stream>(StatusCodes.Status200OK, OpenApiConventions.OctetStream)
            .Produces<Stream>(StatusCodes.Status206PartialContent, OpenApiConventions.OctetStream)
            .ProducesProblems(400, 404, 409, 416, 422, 503)
            .WithResponseHeader("Accept-Ranges", "Always \"bytes\".", 200, 206, 416)
            .WithResponseHeader("Content-Length", "Bytes in the body: the disk size, or the range length.", 200, 206)
            .WithResponseHeader("Content-Range", "bytes a-b/SIZE on 206; bytes */SIZE on 416.", 206, 416);

        routes.MapMethods("/images/{name}/data", [HttpMethods.Head], HeadAsync)
            .WithName("ProbeDisk")
            .WithTags("Disk data")
            .WithSummary("Headers of the matching GET without the body (QEMU's http driver probes with HEAD)")
            .WithHeaderParameter("Range", "As for GET.")
            .ProducesEmpty(200, 206, 400, 404, 409, 416, 503)
            .WithResponseHeader("Accept-Ranges", "Always \"bytes\".", 200, 206, 416)
            .WithResponseHeader("Content-Length", "The length the GET body would have.", 200, 206)
            .WithResponseHeader("Content-Range", "bytes a-b/SIZE on 206; bytes */SIZE on 416.", 206, 416);
    }

    private static Task<IResult> HeadAsync(string name, HttpContext context, [FromServices] IImageService images, [FromServices] ILoggerFactory logs)
        => ServeAsync(name, context, images, logs, sendBody: false);

    private static Task<IResult> GetAsync(string name, HttpContext context, [FromServices] IImageService images, [FromServices] ILoggerFactory logs)
        => ServeAsync(name, context, images, logs, sendBody: true);

    private static async Task<IResult> ServeAsync(string name, HttpContext context, IImageService images, ILoggerFactory logs, bool sendBody)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        CancellationToken ct = context.RequestAborted;
        // One entry into the image's I/O gate serves the size and the first segment's mapping.
        await using IDiskReader image = images.OpenRawAsync(name, ct) is { } raw ? await raw : await images.OpenAsync(name, ct);
        return await ServeRangeAsync(context, name, image, logs, sendBody);
    }

    /// <summary>
    /// Answers a GET or HEAD of a virtual disk (the image's, or a snapshot's): Range resolved per
    /// RFC 9110, the first segment mapped before any header goes out.
    /// </summary>
    internal static async Task<IResult> ServeRangeAsync(HttpContext context, string name, IDiskReadSource disk, ILoggerFactory logs, bool sendBody)
    {
        long size = disk.VirtualSize;
        CancellationToken ct = context.RequestAborted;
        HttpResponse response = context.Response;
        response.Headers.AcceptRanges = "bytes";

        RangeResolution range = RangeHeader.Resolve(context.Request.Headers.Range, size);
        switch (range.Outcome)
        {
            case RangeOutcome.NotSatisfiable:
                return ApiProblems.RangeNotSatisfiable(response, size,
                    $"range '{context.Request.Headers.Range}' does not overlap the disk of {size} bytes");
            case RangeOutcome.MultipleRanges:
                return ApiProblems.RangeNotSatisfiable(response, size,
                    "multiple ranges in one request are not supported yet (no multipart/byteranges); send one range per request");
        }

        // Map the first segment before any header goes out, so an unreadable image is a problem response.
        DiskReadPlan? plan = sendBody && range.Length > 0
            ? await disk.PlanReadAsync(range.Offset, Math.Min(range.Length, PlanSegment), ct)
            : null;
        try
        {
            if (range.Outcome == RangeOutcome.Partial)
            {
                response.StatusCode = StatusCodes.Status206PartialContent;
                response.Headers.ContentRange = range.ContentRange;
            }
            response.ContentType = OpenApiConventions.OctetStream;
            response.ContentLength = range.Length;
            if (plan is null)
                return Results.Empty;

            long position = range.Offset;
            long end = range.Offset + range.Length;
            try
            {
                while (true)
                {
                    await plan.CopyToAsync(response.BodyWriter, ct);
                    position += plan.Length;
                    await plan.DisposeAsync();
                    plan = null;
                    if (position >= end)
                        break;
                    plan = await disk.PlanReadAsync(position, Math.Min(end - position, PlanSegment), ct);
                }
                await response.BodyWriter.FlushAsync(ct);
            }
            catch (Exception) when (ct.IsCancellationRequested)
            {
                logs.CreateLogger(Log.Category).ReadAbortedByClient(name, position);
            }
            catch (ImageException) when (!response.HasStarted)
            {
                // Nothing sent yet (a first compressed cluster that does not inflate): a problem answer, not a cut connection.
                throw;
            }
            catch (Exception e)
            {
                // Content-Length is already promised: padding or a short body would hand the client a
                // corrupt disk that looks whole. Aborting makes the failure visible to it.
                logs.CreateLogger(Log.Category).ReadFailedMidStream(e, name, position);
                context.Abort();
            }
            return Results.Empty;
        }
        finally
        {
            if (plan is not null)
                await plan.DisposeAsync();
        }
    }
}
