using Akka.Discovery.Config.Hosting;
using Akka.Discovery.KubernetesApi;
using Akka.Hosting;
using Akka.Management.Dsl;
using Akka.Management.Cluster.Bootstrap;

namespace QcowActors.Actors.Cluster;

/// <summary>
/// Cluster:Discovery: Akka.Management's Cluster Bootstrap, finding the other nodes through the
/// Kubernetes API (pods labelled app=qcowactors, container port "management") or through a fixed
/// list (config), and probing their management port. Not used with seed nodes or on a single node.
/// </summary>
internal static class ClusterDiscovery
{
    /// <summary>Discovery's service name; also the app label of the pods.</summary>
    public const string ServiceName = "qcowactors";

    public static void Configure(AkkaConfigurationBuilder builder, ClusterSettings cluster)
    {
        if (cluster.UsesDiscovery && !cluster.UsesSeeds) ConfigureBootstrap(builder, cluster);
    }

    /// <summary>Separate, so Akka.Management, the Kubernetes client and their dependencies are loaded only by nodes that use discovery.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void ConfigureBootstrap(AkkaConfigurationBuilder builder, ClusterSettings cluster)
    {
        bool kubernetes = cluster.Discovery == "kubernetes";
        // Akka.Management's own HTTP server (Akka.Http.Shim on Ceen.Httpd) cannot start with the
        // Ceen.Httpd served to us (0.9.10 changed ListenAsync's signature: MissingMethodException),
        // so the one route bootstrap needs, GET /bootstrap/seed-nodes, is served by our Kestrel on
        // Cluster:ManagementPort (see the Api's BootstrapEndpoint) and bootstrap is started here.
        builder.WithClusterBootstrap(o =>
        {
            o.ContactPointDiscovery.ServiceName = ServiceName;
            o.ContactPointDiscovery.PortName = kubernetes ? "management" : null;
            o.ContactPointDiscovery.RequiredContactPointsNr = kubernetes ? 2 : Math.Min(cluster.DiscoveryEndpoints.Length, 3);
            o.ContactPointDiscovery.StableMargin = TimeSpan.FromSeconds(kubernetes ? 5 : 1);
            o.ContactPointDiscovery.ContactWithAllContactPoints = true;
            // Several nodes on one host differ only by port: keep them all.
            o.ContactPoint.FilterOnFallbackPort = false;
            o.ContactPoint.FallbackPort = cluster.ManagementPort;
        }, autoStart: false);
        if (kubernetes)
            builder.WithKubernetesDiscovery(o => o.PodLabelSelector = cluster.PodLabelSelector);
        else
            builder.WithConfigDiscovery(o => o.Services = [new Akka.Discovery.Config.Hosting.Service { Name = ServiceName, Endpoints = cluster.DiscoveryEndpoints }]);
        builder.AddStartup(async (system, _) =>
        {
            var bootstrap = ClusterBootstrap.Get(system);
            // Tells bootstrap where this node's contact point is (what AkkaManagement would do when binding).
            bootstrap.Routes(ManagementRouteProviderSettings.Create(new Uri($"http://{cluster.Hostname}:{cluster.ManagementPort}/"), readOnly: false));
            await bootstrap.Start();
        });
    }
}
