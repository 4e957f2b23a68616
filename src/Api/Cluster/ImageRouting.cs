using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.Options;
using QcowActors.Actors.Cluster;
using QcowActors.Actors.Service;
using QcowActors.Actors.Store;
using QcowActors.Api.Problems;

namespace QcowActors.Api.Cluster;

/// <summary>
/// Sends every request about one image (/images/{name} and below) to the node that owns it. An
/// image owned here is served here under an ownership lease; otherwise its shard entity is asked
/// where it lives (placing it if nobody owns it) and the HTTP request is forwarded there, body
/// streamed both ways: payload bytes never travel in remoting messages.
/// </summary>
internal sealed class ImageRouting(
    RequestDelegate next,
    ImageOwnership ownership,
    IRequiredActor<ImageRegion> region,
    ClusterNode node,
    ClusterPeers peers,
    OwnerForwarder forwarder,
    IOptions<ClusterSettings> cluster,
    IOptions<StoreOptions> store,
    ILogger<ImageRouting> log)
{
    /// <summary>How often a request may be forwarded; bounds ping-pong while ownership moves.</summary>
    internal const int MaxHops = 3;
    private static readonly TimeSpan LocateTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(100);
    private readonly string _storeDirectory = store.Value.Directory;

    public async Task InvokeAsync(HttpContext context)
    {
        string? image = ImageOf(context.Request.Path);
        if (image is null)
        {
            await next(context);
            return;
        }
        if (ownership.TryAcquire(image) is { } lease)
        {
            await ServeAsync(context, image, lease);
            return;
        }
        if (!File.Exists(ImageNames.PathFor(_storeDirectory, image)))
        {
            // No such image (the store is shared): answered here, and no entity, lease or actor is
            // created for a name that does not exist.
            await next(context);
            return;
        }
        await RouteAsync(context, image);
    }

    /// <summary>The image a path is about, or null (other paths, invalid names: served here, which answers them).</summary>
    internal static string? ImageOf(PathString path)
    {
        if (!path.StartsWithSegments("/images", out var rest) || !rest.HasValue) return null;
        // One string per request (the name), not two: this runs for every image request.
        ReadOnlySpan<char> tail = rest.Value.AsSpan(1);
        int slash = tail.IndexOf('/');
        string name = (slash < 0 ? tail : tail[..slash]).ToString();
        return ImageNames.IsValid(name) ? name : null;
    }

    private async Task ServeAsync(HttpContext context, string image, ImageOwnership.Lease lease)
    {
        using (lease)
        {
            // The lease is what keeps the image here and open, however long the request streams. A
            // hand-off that waited its bound revokes it: the connection is cut, so the client sees
            // an error (a reset), never a short body or a 200 for a write that may not have landed.
            using var revoked = lease.Revoked.Register(static c => ((HttpContext)c!).Abort(), context);
            await next(context);
        }
    }

    private async Task RouteAsync(HttpContext context, string image)
    {
        // Only a peer's signed count (EdgeGuard): a client's request starts at 0 whatever it sent.
        int hops = context.Features.Get<ForwardedByPeer>()?.Hops ?? 0;
        var deadline = DateTime.UtcNow + cluster.Value.RouteTimeoutTime;
        string? lastProblem = null;
        while (!context.RequestAborted.IsCancellationRequested)
        {
            if (node.HandedOff.IsCancellationRequested)
            {
                if (hops < MaxHops && await PassOnAsync(context, hops + 1)) return;
                lastProblem = "this node is stopping and no other node took the request";
                break;
            }
            ImageLocated? at = await LocateAsync(image, context.RequestAborted);
            if (at is null)
            {
                lastProblem = "the cluster did not say which node serves it";
            }
            else if (at.Node == node.Address)
            {
                if (ownership.TryAcquire(image) is { } lease)
                {
                    await ServeAsync(context, image, lease);
                    return;
                }
                lastProblem = "it is moving between nodes";
            }
            else if (at.HttpUrl is null)
            {
                lastProblem = $"its node {at.Node} is still starting";
            }
            else if (hops >= MaxHops)
            {
                lastProblem = $"it was forwarded {hops} times without reaching its owner";
                break;
            }
            else if (await ForwardAsync(context, at.HttpUrl, hops + 1))
            {
                return;
            }
            else
            {
                lastProblem = $"its node {at.Node} did not take the connection";
            }
            if (DateTime.UtcNow + RetryDelay > deadline) break;
            await Task.Delay(RetryDelay, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
        }
        if (context.RequestAborted.IsCancellationRequested) return;
        log.LogWarning("Request for image {Image} not routed: {Problem}", image, lastProblem);
        await WriteUnavailableAsync(context, $"image '{image}' cannot be reached right now: {lastProblem}; try again");
    }

    /// <summary>A stopping node that has handed its images off sends the request to any other node, which routes it.</summary>
    private async Task<bool> PassOnAsync(HttpContext context, int hops)
    {
        foreach (string url in peers.Urls())
            if (await ForwardAsync(context, url, hops)) return true;
        return false;
    }

    /// <summary>A request that came through a transfer ticket goes on with the path its client used: the owner checks the ticket again.</summary>
    private async Task<bool> ForwardAsync(HttpContext context, string url, int hops)
    {
        if (context.Features.Get<Tickets.TicketAccess>() is not { } ticket)
            return await forwarder.TryForwardAsync(context, url, hops);
        var served = context.Request.Path;
        context.Request.Path = ticket.OriginalPath;
        try
        {
            return await forwarder.TryForwardAsync(context, url, hops);
        }
        finally
        {
            context.Request.Path = served;
        }
    }

    private async Task<ImageLocated?> LocateAsync(string image, CancellationToken aborted)
    {
        // The hand-off ends this node's region: stop waiting for it at once.
        using var ct = CancellationTokenSource.CreateLinkedTokenSource(aborted, node.HandedOff);
        try
        {
            return await region.ActorRef.Ask<ImageLocated>(new LocateImage(image), LocateTimeout, ct.Token);
        }
        catch (Exception e) when (e is AskTimeoutException or OperationCanceledException)
        {
            // The owner may be dead and not yet downed (ask again until the deadline), or the client left.
            return null;
        }
    }

    internal static async Task WriteUnavailableAsync(HttpContext context, string detail)
    {
        if (context.Response.HasStarted) return;
        context.Response.Clear();
        context.Response.Headers.RetryAfter = "1";
        await ApiProblems.Result(StatusCodes.Status503ServiceUnavailable, detail).ExecuteAsync(context);
    }
}
