using Akka.Discovery.Config.Hosting;
using Akka.Discovery.KubernetesApi;
using Akka.Hosting;
using Akka.Management;
using Akka.Management.Cluster.Bootstrap;

namespace QcowActors.Actors.Cluster;

/// <summary>
/// Cluster:Discovery: Akka.Management's HTTP endpoint plus Cluster Bootstrap, finding the other
/// nodes through the Kubernetes API (pods labelled app=qcowactors, container port "management")
/// or through a fixed list (config). Not used with seed nodes or on a single node.
/// </summary>
internal static class ClusterDiscovery
{
    /// <summary>Discovery's service name; also the app label of the pods.</summary>
    public const string ServiceName = "qcowactors";

    public static void Configure(AkkaConfigurationBuilder builder, ClusterSettings cluster)
    {
        if (!cluster.UsesDiscovery || cluster.UsesSeeds) return;
        bool kubernetes = cluster.Discovery == "kubernetes";
        builder.WithAkkaManagement(setup =>
        {
            setup.Http.HostName = cluster.Hostname;
            setup.Http.Port = cluster.ManagementPort;
            setup.Http.BindHostName = cluster.ManagementBindHostname ?? cluster.Hostname;
            setup.Http.BindPort = cluster.ManagementPort;
        }, autoStart: true);
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
        }, autoStart: true);
        if (kubernetes)
            builder.WithKubernetesDiscovery(o => o.PodLabelSelector = cluster.PodLabelSelector);
        else
            builder.WithConfigDiscovery(o => o.Services = [new Akka.Discovery.Config.Hosting.Service { Name = ServiceName, Endpoints = cluster.DiscoveryEndpoints }]);
    }
}
