using Akka;
using Akka.Actor;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using QcowActors.Actors.Cluster;
using QcowActors.Actors.Service;

namespace QcowActors.Api.Cluster;

/// <summary>
/// The node's HTTP side of joining and leaving the cluster. Started: publish the URL other nodes
/// forward to. Stopping (SIGTERM): readiness turns 503 at once; Akka's coordinated shutdown then
/// hands the images off (each closed cleanly) while this server still answers and forwards; once
/// that is done the server stops listening and drains (requests still arriving are passed on to
/// the other nodes) while the node leaves the cluster.
/// </summary>
internal sealed class NodeLifecycle(
    IServer server,
    IHostApplicationLifetime lifetime,
    IServiceProvider services,
    ClusterNode node,
    IOptions<ClusterSettings> cluster,
    IOptions<StoreOptions> store,
    ILogger<NodeLifecycle> log) : IHealthCheck
{
    public const string HeaderName = "X-QcowActors-Node";
    private volatile bool _stopping;

    public static void Use(WebApplication app)
    {
        var lifecycle = app.Services.GetRequiredService<NodeLifecycle>();
        var node = app.Services.GetRequiredService<ClusterNode>();
        app.Lifetime.ApplicationStarted.Register(lifecycle.OnStarted);
        app.Lifetime.ApplicationStopping.Register(() => lifecycle._stopping = true);
        // Cluster:ExposeNodeHeader (by default only on a loopback node): every response names the node
        // that executed it; a forwarded one keeps the owner's. Off, no response names a node: the
        // address is an internal one, of no use to a client outside the cluster.
        if (!app.Services.GetRequiredService<IOptions<ClusterSettings>>().Value.ExposesNodeHeader) return;
        // Set when the response starts, so error answers (the exception handler clears headers) have it too.
        Func<object, Task> nameNode = state =>
        {
            var headers = ((HttpResponse)state).Headers;
            if (!headers.ContainsKey(HeaderName)) headers[HeaderName] = node.Address;
            return Task.CompletedTask;
        };
        app.Use((context, next) =>
        {
            context.Response.OnStarting(nameNode, context.Response);
            return next(context);
        });
    }

    private void OnStarted()
    {
        var settings = cluster.Value;
        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        // The management listener (Cluster:Discovery) is not where requests are forwarded to.
        if (settings.UsesDiscovery) addresses = [.. addresses.Where(a => !a.EndsWith($":{settings.ManagementPort}", StringComparison.Ordinal))];
        node.HttpUrl = PublicUrl(addresses, settings.Hostname);
        log.LogInformation("Node {Node} serves HTTP at {Url}", node.Address, node.HttpUrl);
        // Resolved now, not at build: the actor system exists once the hosted services have started.
        var system = services.GetRequiredService<ActorSystem>();
        // Runs once the shard region has handed every image off: from here this node passes requests
        // on to the others, stops accepting connections and drains the requests it has.
        CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseClusterLeave, "stop-http", async () =>
        {
            node.MarkHandedOff();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(8));
            try { await server.StopAsync(cts.Token); }
            catch (OperationCanceledException) { }
            return Done.Instance;
        });
        // A node downed by the cluster (or whose actor system stops for any other reason) exits.
        system.WhenTerminated.ContinueWith(_ => lifetime.StopApplication(), TaskScheduler.Default);
    }

    /// <summary>The first http address, with a wildcard host replaced by the cluster hostname other nodes use.</summary>
    internal static string? PublicUrl(IEnumerable<string> addresses, string hostname)
    {
        foreach (string address in addresses)
        {
            if (!Uri.TryCreate(address.Replace("://+", "://0.0.0.0").Replace("://*", "://0.0.0.0"), UriKind.Absolute, out var uri) || uri.Scheme != "http")
                continue;
            string host = uri.Host is "0.0.0.0" or "[::]" or "::" ? hostname : uri.Host;
            if (host.Contains(':') && !host.StartsWith('[')) host = $"[{host}]";
            return $"http://{host}:{uri.Port}";
        }
        return null;
    }

    /// <summary>Readiness: not while stopping, and not without the store directory.</summary>
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (_stopping) return Task.FromResult(HealthCheckResult.Unhealthy("the node is stopping"));
        if (!Directory.Exists(store.Value.Directory)) return Task.FromResult(HealthCheckResult.Unhealthy("the store directory is missing"));
        return Task.FromResult(HealthCheckResult.Healthy());
    }
}
