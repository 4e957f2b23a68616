using System.Globalization;
using System.Net;
using System.Net.Http;
using Microsoft.Extensions.Options;
using QcowActors.Actors.Cluster;
using Yarp.ReverseProxy.Forwarder;

namespace QcowActors.Api.Cluster;

/// <summary>
/// Forwards a request to the node that owns its image with YARP's IHttpForwarder: headers and
/// body are streamed both ways with pooled buffers, so a 1 GiB upload or a full-disk read through
/// a non-owner costs it no memory that grows with the transfer. Every header of the client's
/// request goes on unchanged (Authorization too: the owner checks it again), except the routing
/// headers, which this node sets and signs (<see cref="ForwardingSignature"/>).
/// </summary>
internal sealed class OwnerForwarder(IHttpForwarder forwarder, ForwardingSignature signature, IOptions<ClusterSettings> cluster) : IDisposable
{
    private readonly bool _exposeNode = cluster.Value.ExposesNodeHeader;

    private readonly HttpMessageInvoker _client = new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        ConnectTimeout = TimeSpan.FromSeconds(2),
        ActivityHeadersPropagator = null,
    });

    private static readonly ForwarderRequestConfig RequestConfig = new()
    {
        // Idle time allowed between bytes; a long upload keeps it moving.
        ActivityTimeout = TimeSpan.FromMinutes(2),
        Version = HttpVersion.Version11,
        VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
    };

    /// <summary>
    /// True when the request was answered (by the owner, or with a problem when it failed midway);
    /// false when the owner refused the connection before any byte was sent, so the caller may
    /// look for the owner again and retry safely.
    /// </summary>
    public async Task<bool> TryForwardAsync(HttpContext context, string ownerUrl, int hops)
    {
        var error = await forwarder.SendAsync(context, ownerUrl, _client, RequestConfig, new ForwardTransformer(hops, signature, _exposeNode));
        if (error == ForwarderError.None) return true;
        var failure = context.Features.Get<IForwarderErrorFeature>()?.Exception;
        if (!context.Response.HasStarted && error == ForwarderError.Request && NotConnected(failure))
        {
            context.Features.Set<IForwarderErrorFeature>(null);
            context.Response.Clear();
            context.Response.StatusCode = StatusCodes.Status200OK;
            return false;
        }
        if (!context.Response.HasStarted)
            await ImageRouting.WriteUnavailableAsync(context, $"the node serving this image ({ownerUrl}) failed while answering ({error}); try again");
        return true;
    }

    private static bool NotConnected(Exception? e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            // Only a failed connect: later failures may have sent part of the body already.
            if (x is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }) return true;
        }
        return false;
    }

    public void Dispose() => _client.Dispose();

    private sealed class ForwardTransformer(int hops, ForwardingSignature signature, bool exposeNode) : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            // Set here (YARP would after this call) so that the target signed is the one sent.
            proxyRequest.RequestUri ??= RequestUtilities.MakeDestinationAddress(destinationPrefix, httpContext.Request.Path, httpContext.Request.QueryString);
            // EdgeGuard removed the client's routing headers; these are this node's.
            var headers = proxyRequest.Headers;
            headers.Remove(RoutingHeaders.Hops);
            headers.Remove(RoutingHeaders.ForwardedAt);
            headers.Remove(RoutingHeaders.Signature);
            headers.TryAddWithoutValidation(RoutingHeaders.Hops, hops.ToString(CultureInfo.InvariantCulture));
            // Without a key (a single node, which has nobody to forward to) the receiver trusts nothing anyway.
            if (signature.CanSign)
            {
                long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
                headers.TryAddWithoutValidation(RoutingHeaders.ForwardedAt, now.ToString(CultureInfo.InvariantCulture));
                headers.TryAddWithoutValidation(RoutingHeaders.Signature, signature.Sign(proxyRequest.Method.Method, proxyRequest.RequestUri.PathAndQuery, hops, now));
            }
        }

        public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            bool proceed = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
            // The owner's X-QcowActors-Node is relayed only when this node would send its own.
            if (!exposeNode)
                httpContext.Response.Headers.Remove(NodeLifecycle.HeaderName);
            return proceed;
        }
    }
}
