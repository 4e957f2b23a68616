using Microsoft.AspNetCore.Mvc;
using QcowActors.Actors.Service;
using QcowActors.Api.Http;
using QcowActors.Api.OpenApi;
using QcowActors.Api.Problems;

namespace QcowActors.Api.Endpoints;

/// <summary>/images and /images/{name}: create, list, describe, delete.</summary>
internal static class ImagesEndpoints
{
    public static void MapImages(this IEndpointRouteBuilder routes)
    {
        RouteGroupBuilder images = routes.MapGroup("/images").WithTags("Images");

        images.MapPost("", CreateAsync)
            .WithName("CreateImage")
            .WithSummary("Create an empty QCOW2 image")
            .WithMetadata(RequestBodyLimit.Json)
            .WithRequestBody(OpenApiSchemas.CreateImageRequest)
            .Produces<ImageInfo>(StatusCodes.Status201Created)
            .ProducesProblems(400, 409, 413, 503, 507)
            .WithResponseHeader("Location", "/images/{name} of the new image.", 201);

        images.MapGet("", ListAsync)
            .WithName("ListImages")
            .WithSummary("List the images in the store")
            .Produces<ImageInfo[]>(StatusCodes.Status200OK)
            .ProducesProblems(503);

        images.MapGet("/{name}", GetAsync)
            .WithName("GetImage")
            .WithSummary("Describe one image")
            .Produces<ImageInfo>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 422, 503);

        images.MapPatch("/{name}", ResizeAsync)
            .WithName("ResizeImage")
            .WithSummary("Change the virtual disk size (grow, or shrink when no data lies past the new end)")
            .WithMetadata(RequestBodyLimit.Json)
            .WithRequestBody(OpenApiSchemas.ResizeRequest)
            .Produces<ImageInfo>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 422, 503, 507);

        images.MapPost("/{name}/close", CloseAsync)
            .WithName("CloseImage")
            .WithSummary("Flush and close the image on the server, releasing its file and locks; the next request opens it again")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblems(400, 404, 503);

        images.MapDelete("/{name}", DeleteAsync)
            .WithName("DeleteImage")
            .WithSummary("Delete an image and its file")
            .Produces(StatusCodes.Status204NoContent)
            .ProducesProblems(400, 404, 409, 503);
    }

    private static async Task<IResult> CreateAsync(HttpContext context, [FromServices] IImageService images)
    {
        CancellationToken ct = context.RequestAborted;
        var (document, error) = await JsonBody.ReadObjectAsync(context.Request, ct);
        if (document is null)
            return ApiProblems.BadRequest(error);
        using (document)
        {
            if (!CreateImageRequest.TryParse(document.RootElement, out CreateImageRequest? request, out error))
                return ApiProblems.BadRequest(error);
            ImageInfo info = await images.CreateAsync(request!.Name, request.ToOptions(), ct);
            return TypedResults.Created($"/images/{Uri.EscapeDataString(info.Name)}", info);
        }
    }

    private static async Task<IResult> ListAsync(HttpContext context, [FromServices] IImageService images)
        => TypedResults.Ok(await images.ListAsync(context.RequestAborted));

    private static async Task<IResult> GetAsync(string name, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        return TypedResults.Ok(await images.GetInfoAsync(name, context.RequestAborted));
    }

    private static async Task<IResult> ResizeAsync(string name, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        CancellationToken ct = context.RequestAborted;
        var (document, jsonError) = await JsonBody.ReadObjectAsync(context.Request, ct);
        if (document is null)
            return ApiProblems.BadRequest(jsonError);
        long size;
        using (document)
        {
            System.Text.Json.JsonElement body = document.RootElement;
            if (JsonBody.UnknownMember(body, "size") is { } unknown)
                return ApiProblems.BadRequest(unknown);
            if (!JsonBody.TryGet(body, "size", out System.Text.Json.JsonElement value))
                return ApiProblems.BadRequest("size is required: a number of bytes or a string such as \"10G\"");
            if (!JsonBody.TryGetByteSize(value, "size", out size, out string sizeError))
                return ApiProblems.BadRequest(sizeError);
        }
        return TypedResults.Ok(await images.ResizeAsync(name, size, ct));
    }

    private static async Task<IResult> CloseAsync(string name, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        await images.CloseAsync(name, context.RequestAborted);
        return TypedResults.NoContent();
    }

    private static async Task<IResult> DeleteAsync(string name, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        await images.DeleteAsync(name, context.RequestAborted);
        return TypedResults.NoContent();
    }
}
