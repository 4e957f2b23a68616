using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using QcowActors.Actors.Service;
using QcowActors.Api.Http;
using QcowActors.Api.OpenApi;
using QcowActors.Api.Problems;
using QcowActors.Api.Streaming;

namespace QcowActors.Api.Endpoints;

/// <summary>PUT /images/{name}/data: imageio-compatible upload of a byte range of the disk.</summary>
internal static class DiskWriteEndpoints
{
    public static void MapDiskWrite(this IEndpointRouteBuilder routes)
    {
        routes.MapPut("/images/{name}/data", PutAsync)
            .WithName("WriteDisk")
            .WithTags("Disk data")
            .WithSummary("Write bytes at an offset (Content-Range: bytes a-b/* gives the offset; default 0)")
            .WithMetadata(RequestBodyLimit.Unlimited)
            .WithRequestBody(OpenApiSchemas.Binary, OpenApiConventions.OctetStream)
            .WithHeaderParameter("Content-Range", "bytes a-b/* or bytes a-b/SIZE (SIZE must be the disk size). Without it the body is written from offset 0.")
            .WithQueryParameter("flush", "y (default): durable before the answer; n: leave it to PATCH {\"op\":\"flush\"}.", "y", "n", "true", "false", "1", "0")
            .ProducesEmpty(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 413, 416, 422, 503, 507)
            .WithResponseHeader("Content-Range", "bytes */SIZE on 416.", 416);
    }

    private static async Task<IResult> PutAsync(
        string name,
        HttpContext context,
        [FromServices] IImageService images,
        [FromServices] IOptions<StoreOptions> options,
        [FromServices] ILoggerFactory logs)
    {
        if (ImageName.Validate(name) is { } nameError)
            return ApiProblems.BadRequest(nameError);
        HttpRequest request = context.Request;
        if (!FlushParameter.TryParse(request.Query["flush"], out bool flush, out string error))
            return ApiProblems.BadRequest(error);

        ContentRangeHeader? contentRange = null;
        string? contentRangeValue = request.Headers.ContentRange;
        if (contentRangeValue is not null)
        {
            if (!ContentRangeHeader.TryParse(contentRangeValue, out ContentRangeHeader parsed, out error))
                return ApiProblems.BadRequest(error);
            contentRange = parsed;
        }

        CancellationToken ct = context.RequestAborted;
        await using ImageSession image = await images.OpenAsync(name, ct);
        long size = image.VirtualSize;

        long start = contentRange?.First ?? 0;
        long? declared = contentRange?.Length ?? request.ContentLength;
        if (contentRange is { } range)
        {
            if (range.CompleteLength is { } complete && complete != size)
                return ApiProblems.RangeNotSatisfiable(context.Response, size,
                    $"Content-Range '{contentRangeValue}' gives a complete length of {complete} bytes but the disk has {size}");
            if (request.ContentLength is { } contentLength && contentLength != range.Length)
                return ApiProblems.BadRequest(
                    $"Content-Length {contentLength} does not match the {range.Length} bytes of Content-Range '{contentRangeValue}'");
        }
        if (start + (declared ?? 0) > size)
            return ApiProblems.RangeNotSatisfiable(context.Response, size,
                $"writing {declared} bytes at offset {start} would end at {start + declared}, past the end of the disk ({size} bytes)");

        ILogger log = logs.CreateLogger(Log.Category);
        var upload = new DiskUpload(image.WriteAsync, options.Value.MaxWriteChunk);
        UploadResult result;
        try
        {
            result = await upload.CopyAsync(request.BodyReader, start, declared, declared is { } d ? start + d : size, ct);
        }
        catch (Exception) when (ct.IsCancellationRequested)
        {
            // The client is gone: nothing was flushed, and no status is sent that could read as an acknowledgement.
            log.UploadAbortedByClient(name, start);
            context.Abort();
            return Results.Empty;
        }

        if (Rejection(result, declared, start, size) is { } rejection)
        {
            // Chunks already written stay written but unflushed and unacknowledged, as a client that
            // disconnected would leave them; the client is told to retry the whole range.
            log.UploadRejected(name, start, rejection.Detail);
            return ApiProblems.Result(rejection.Status, rejection.Detail);
        }
        if (flush)
            await image.FlushAsync(ct);
        // Exactly 200: imageio's client treats 204 as a failed upload.
        return Results.Ok();
    }

    private static (int Status, string Detail)? Rejection(UploadResult result, long? declared, long start, long size) => result.Outcome switch
    {
        UploadOutcome.Completed => null,
        UploadOutcome.TooShort => (StatusCodes.Status400BadRequest,
            $"the body ended after {result.BytesReceived} bytes but {declared} were declared; nothing was flushed, retry the range"),
        UploadOutcome.TooLong => (StatusCodes.Status400BadRequest,
            $"the body is longer than the {declared} bytes declared; nothing was flushed, retry the range"),
        _ => (StatusCodes.Status413PayloadTooLarge,
            $"the body goes past the end of the disk ({size} bytes) when written at offset {start}; nothing was flushed"),
    };
}
