using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using QcowActors.Actors.Cluster;
using QcowActors.Api.Problems;

namespace QcowActors.Api.Cluster;

/// <summary>
/// The first middleware every request meets.
/// <list type="number">
/// <item>With Cluster:Discovery the node listens on Cluster:ManagementPort too: there it serves
/// GET /bootstrap/seed-nodes and nothing else (404), and that route is not served on the HTTP port.</item>
/// <item>Routing headers (<see cref="RoutingHeaders.Prefix"/>*) are removed from every request. A
/// request a peer forwarded, whose signature verifies (<see cref="ForwardingSignature"/>), keeps its
/// hop count as a <see cref="ForwardedByPeer"/> feature, which is all routing reads; any other is a
/// client's request (hops 0), whatever it claims. An ordinary request costs one pass over its header
/// names, without allocating.</item>
/// </list>
/// </summary>
internal sealed class EdgeGuard(RequestDelegate next, ForwardingSignature signature, IOptions<ClusterSettings> cluster, ILogger<EdgeGuard> log)
{
    private const long WarningIntervalMs = 10_000;
    private readonly int _managementPort = BootstrapEndpoint.IsServed(cluster.Value) ? cluster.Value.ManagementPort : 0;
    private long _nextWarningMs;
    private int _unwarned;

    public Task InvokeAsync(HttpContext context)
    {
        if (_managementPort != 0 && ManagementPortProblem(context) is { } problem)
            return ApiProblems.Result(StatusCodes.Status404NotFound, problem).ExecuteAsync(context);
        if (RoutingHeaders.AnyIn(context.Request.Headers))
            Screen(context);
        return next(context);
    }

    /// <summary>Null when the request may go on: bootstrap on the management port, anything else on the others.</summary>
    private string? ManagementPortProblem(HttpContext context)
    {
        PathString path = context.Request.Path;
        if (context.Connection.LocalPort == _managementPort)
        {
            return path.Equals(BootstrapEndpoint.Route, StringComparison.OrdinalIgnoreCase)
                ? null
                : $"this is the cluster management port: it serves only GET {BootstrapEndpoint.Route} (cluster bootstrap); the API is on the HTTP port";
        }
        // As for any path the API does not serve.
        return path.StartsWithSegments(BootstrapEndpoint.Prefix, StringComparison.OrdinalIgnoreCase) ? $"no resource at {path.ToUriComponent()}" : null;
    }

    private void Screen(HttpContext context)
    {
        IHeaderDictionary headers = context.Request.Headers;
        var signed = headers[RoutingHeaders.Signature];
        if (signed.Count > 0)
        {
            // The target as it arrived on the wire, which is what the forwarding node signed.
            string target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? "";
            long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            if (signature.Verify(context.Request.Method, target, headers[RoutingHeaders.Hops], headers[RoutingHeaders.ForwardedAt], signed, now, out string? problem) is { } hops)
                context.Features.Set(new ForwardedByPeer(hops));
            else
                WarnUntrusted(context, problem ?? "it does not verify");
        }
        // Trusted or not, nothing after this reads them: the verified hop count travels in the feature.
        var names = new List<string>();
        foreach (var header in headers)
        {
            if (RoutingHeaders.IsRoutingHeader(header.Key))
                names.Add(header.Key);
        }
        foreach (string name in names)
            headers.Remove(name);
    }

    /// <summary>
    /// A signature that does not verify is a forgery or a peer with another key or a skewed clock:
    /// worth a warning, but at most one every 10 s (with the count of the others), so that nobody can
    /// fill the log by sending them.
    /// </summary>
    private void WarnUntrusted(HttpContext context, string problem)
    {
        long now = Environment.TickCount64;
        long next = Interlocked.Read(ref _nextWarningMs);
        if (now < next || Interlocked.CompareExchange(ref _nextWarningMs, now + WarningIntervalMs, next) != next)
        {
            Interlocked.Increment(ref _unwarned);
            return;
        }
        int others = Interlocked.Exchange(ref _unwarned, 0);
        log.LogWarning(
            "Untrusted forwarded request from {Remote}: {Method} {Path} carried {Header}, but {Problem}; served as a client's request, its routing headers removed " +
            "({Others} more such requests since the last warning). If it came from another node, that node's Cluster:ForwardingKey or clock differs from this one's.",
            context.Connection.RemoteIpAddress, context.Request.Method, context.Request.Path.ToUriComponent(), RoutingHeaders.Signature, problem, others);
    }
}

/// <summary>On a request a peer forwarded and signed (<see cref="EdgeGuard"/>): how many times it has been forwarded.</summary>
internal sealed class ForwardedByPeer(int hops)
{
    public int Hops { get; } = hops;
}
