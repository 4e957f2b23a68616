using QcowActors.Api.Problems;

namespace QcowActors.Api.Tickets;

/// <summary>
/// Serves /tickets/{id}/data and its extents and checksum as the data endpoints of the ticket's
/// image: before routing, the path becomes /images/{image}/data..., so every rule of those
/// endpoints (ranges, imageio semantics, routing to the owner) applies unchanged. Runs for every
/// request, so it costs one prefix check for all the others.
/// </summary>
internal sealed class TicketPaths(RequestDelegate next, TicketStore tickets)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (!context.Request.Path.StartsWithSegments("/tickets", out var rest) || !rest.HasValue)
        {
            await next(context);
            return;
        }
        ReadOnlySpan<char> tail = rest.Value.AsSpan(1);
        int slash = tail.IndexOf('/');
        string id = (slash < 0 ? tail : tail[..slash]).ToString();
        string suffix = slash < 0 ? "" : tail[slash..].ToString();
        if (suffix is not ("/data" or "/data/extents" or "/data/checksum" or "/data/checksum/algorithms"))
        {
            await Problem(context, StatusCodes.Status404NotFound,
                "a transfer ticket serves /tickets/{id}/data, /tickets/{id}/data/extents and /tickets/{id}/data/checksum only");
            return;
        }
        var ticket = await tickets.FindAsync(id, context.RequestAborted);
        if (ticket is null)
        {
            await Problem(context, StatusCodes.Status404NotFound, "no such transfer ticket: it expired, was deleted, or never existed");
            return;
        }
        if (ticket.Scope == TicketScope.Read && !IsRead(context.Request.Method))
        {
            await Problem(context, StatusCodes.Status403Forbidden,
                $"this transfer ticket is for reading image '{ticket.Image}' (GET, HEAD, OPTIONS, extents); {context.Request.Method} needs a write ticket");
            return;
        }
        context.Features.Set(new TicketAccess(id, ticket, context.Request.Path));
        if (ticket.Bitmap is { } bitmap)
        {
            if (suffix is not ("/data" or "/data/extents" or "/data/checksum"))
            {
                await Problem(context, StatusCodes.Status404NotFound, "a bitmap's transfer ticket serves /tickets/{id}/data, …/data/extents and …/data/checksum only");
                return;
            }
            context.Request.Path = $"/images/{ticket.Image}/bitmaps/{bitmap}{suffix}";
            if (ticket.Snapshot is { } snapshot)
                context.Request.QueryString = context.Request.QueryString.Add("snapshot", snapshot);
        }
        else context.Request.Path = $"/images/{ticket.Image}{suffix}";
        await next(context);
    }

    private static bool IsRead(string method) => HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method);

    private static Task Problem(HttpContext context, int status, string detail) => ApiProblems.Result(status, detail).ExecuteAsync(context);
}
