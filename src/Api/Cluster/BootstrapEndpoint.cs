using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Management.Cluster.Bootstrap.ContactPoint;
using Newtonsoft.Json;
using QcowActors.Actors.Cluster;
using ClusterSettings = QcowActors.Actors.Cluster.ClusterSettings;

namespace QcowActors.Api.Cluster;

/// <summary>
/// The contact point Cluster Bootstrap probes on every node's Cluster:ManagementPort: GET
/// /bootstrap/seed-nodes answers this node's address and the cluster members it sees, in
/// Akka.Management's JSON (read by its HttpContactPointBootstrap). Served by Kestrel on a second
/// listener because Akka.Management's own server cannot start here (see ClusterDiscovery).
/// Only for Cluster:Discovery; the port must never be exposed outside the cluster. The route is
/// served there only, and the port serves nothing else (<see cref="EdgeGuard"/>, by the port the
/// connection arrived on: a Host header says nothing about that).
/// </summary>
internal static class BootstrapEndpoint
{
    public const string Prefix = "/bootstrap";
    public const string Route = "/bootstrap/seed-nodes";

    /// <summary>Whether the node listens on Cluster:ManagementPort: with discovery (and no seed nodes).</summary>
    public static bool IsServed(ClusterSettings cluster) => cluster.UsesDiscovery && !cluster.UsesSeeds;

    /// <summary>Adds the management listener to the server's URLs (before the host is built).</summary>
    public static void Listen(WebApplicationBuilder builder)
    {
        var cluster = builder.Configuration.GetSection(ClusterSettings.Section).Get<ClusterSettings>() ?? new ClusterSettings();
        if (!IsServed(cluster)) return;
        string urls = builder.Configuration["urls"] ?? "http://127.0.0.1:8080";
        string bind = cluster.ManagementBindHostname ?? cluster.Hostname;
        builder.WebHost.UseUrls([.. urls.Split(';', StringSplitOptions.RemoveEmptyEntries), $"http://{bind}:{cluster.ManagementPort}"]);
    }

    public static void Map(IEndpointRouteBuilder routes, IConfiguration configuration)
    {
        var cluster = configuration.GetSection(ClusterSettings.Section).Get<ClusterSettings>() ?? new ClusterSettings();
        if (!IsServed(cluster)) return;
        routes.MapGet(Route, (ActorSystem system) => Results.Text(SeedNodesJson(system), "application/json"))
            .ExcludeFromDescription();
    }

    /// <summary>The members a joining node may use as seeds: reachable and Joining/WeaklyUp/Up; none while this node leaves.</summary>
    private static string SeedNodesJson(ActorSystem system)
    {
        var self = Akka.Cluster.Cluster.Get(system);
        var members = ImmutableList<HttpBootstrapJsonProtocol.ClusterMember>.Empty;
        if (self.SelfMember.Status is not (MemberStatus.Down or MemberStatus.Exiting or MemberStatus.Leaving or MemberStatus.Removed))
        {
            var state = self.State;
            members = [.. state.Members
                .Where(m => !state.Unreachable.Contains(m) && m.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Joining)
                .Select(m => new HttpBootstrapJsonProtocol.ClusterMember(m.UniqueAddress.Address, m.UniqueAddress.Uid, m.Status, m.Roles))];
        }
        return JsonConvert.SerializeObject(new HttpBootstrapJsonProtocol.SeedNodes(self.SelfUniqueAddress.Address, members));
    }
}
