using Akka;
using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Cluster.Hosting.SBR;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using QcowActors.Actors.Cluster;
using QcowActors.Actors.Io;
using QcowActors.Actors.Store;

namespace QcowActors.Actors.Service;

public static class ServiceCollectionExtensions
{
    /// <summary>
    /// The actor system's name: part of every cluster address (akka.tcp://QcowActors@host:port, akka.ssl.tcp:// with TLS),
    /// so operators' seed-node settings and the nodes must agree on it. Never change it.
    /// </summary>
    public const string ActorSystemName = "QcowActors";

    /// <summary>
    /// Registers the actor system (Akka.Hosting) as a cluster node, the node-local store actor, the
    /// image shard region and <see cref="IImageService"/>. Options come from IOptions&lt;StoreOptions&gt;
    /// and IOptions&lt;ClusterSettings&gt; (bind "Storage" and "Cluster" before calling). With no
    /// cluster settings the node joins itself. On shutdown the region hands its images off (each
    /// closed cleanly), then every image still open here is flushed and closed.
    /// </summary>
    public static IServiceCollection AddQcowStore(this IServiceCollection services)
    {
        services.TryAddSingleton<IImageFileSystem, DiskFileSystem>();
        services.TryAddSingleton<ClusterNode>();
        services.TryAddSingleton<ImageOwnership>();
        services.TryAddSingleton<ClusterPeers>();
        services.TryAddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<StoreOptions>>().Value;
            return new Image.MetadataBudget(o.MetadataCacheBytesPerImage, o.MetadataCacheBytesTotal);
        });
        services.TryAddSingleton(sp => new Backing.BackingChains(
            Path.GetFullPath(sp.GetRequiredService<IOptions<StoreOptions>>().Value.Directory), sp.GetRequiredService<IImageFileSystem>()));
        services.AddOptions<ClusterSettings>();
        services.AddAkka(ActorSystemName, (builder, sp) =>
        {
            var options = sp.GetRequiredService<IOptions<StoreOptions>>().Value;
            var cluster = sp.GetRequiredService<IOptions<ClusterSettings>>().Value;
            var fs = sp.GetRequiredService<IImageFileSystem>();
            var node = sp.GetRequiredService<ClusterNode>();
            var ownership = sp.GetRequiredService<ImageOwnership>();
            var peers = sp.GetRequiredService<ClusterPeers>();
            var budget = sp.GetRequiredService<Image.MetadataBudget>();
            var chains = sp.GetRequiredService<Backing.BackingChains>();
            builder.AddHocon(
                "akka.coordinated-shutdown.phases.before-actor-system-terminate.timeout = 120s\n" +
                "akka.loglevel = INFO\n" +
                $"akka.cluster.split-brain-resolver.stable-after = {(long)cluster.StableAfterTime.TotalMilliseconds}ms\n" +
                // Down everybody rather than guess while membership keeps changing (3/4 of stable-after).
                "akka.cluster.split-brain-resolver.down-all-when-unstable = on\n" +
                // A shard whose owner froze mid-rebalance is given up after this instead of 60 s; the
                // file lock still keeps the next owner out until the frozen one has closed the image.
                // Above ImageOwner's drain (3 s) + close (6 s).
                "akka.cluster.sharding.handoff-timeout = 10s\n" +
                // The entity passivates itself when its image is idle (ImageOwner), never on a message count.
                "akka.cluster.sharding.passivate-idle-entity-after = off\n" +
                // 1.5.73 still defaults to persistence on the in-memory journal, which forgets shard
                // placements on restart and can place a shard twice (akka.net#7289).
                "akka.cluster.sharding.state-store-mode = ddata\n" +
                "akka.cluster.sharding.remember-entities = off\n", HoconAddMode.Prepend);
            builder.WithRemoting(RemotingTls.Options(cluster)); // akka.ssl.tcp with mutual TLS when Cluster:Tls is set
            if (System.Net.IPAddress.TryParse(cluster.Hostname, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
            {
                // An IPv4 address binds an IPv4 socket, not a dual-stack one on ::ffff:a.b.c.d.
                builder.AddHocon("akka.remote.dot-netty.tcp { dns-use-ipv6 = false, enforce-ip-family = true }", HoconAddMode.Prepend);
            }
            builder.WithClustering(new ClusterOptions
            {
                SeedNodes = cluster.SeedNodes,
                SplitBrainResolver = new KeepMajorityOption(),
            });
            ClusterDiscovery.Configure(builder, cluster);
            builder.WithActorSystemLivenessCheck(tags: ["live"]);
            builder.WithAkkaClusterReadinessCheck(tags: ["ready"]);
            builder.WithActors((system, registry) =>
            {
                var store = system.ActorOf(ImageStoreActor.Props(Path.GetFullPath(options.Directory), fs, budget, options, ownership, chains), "images");
                registry.Register<ImageStoreActor>(store);
                system.ActorOf(PeerDirectory.Props(node, peers), PeerDirectory.Name);
                CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseBeforeActorSystemTerminate, "close-images", async () =>
                {
                    await store.Ask<StoreStopped>(new StopAllImages(), TimeSpan.FromSeconds(110)).ConfigureAwait(false);
                    return Done.Instance;
                });
                // Started here rather than with WithShardRegion, which takes no allocation strategy:
                // shards never rebalance (NoRebalanceAllocationStrategy says why).
                var region = ClusterSharding.Get(system).Start(ImageRegion.TypeName,
                    image => ImageOwner.Props(image, node, ownership, store, options.PassivateAfter),
                    ClusterShardingSettings.Create(system),
                    new ImageMessageExtractor(),
                    new NoRebalanceAllocationStrategy(),
                    ReleaseImage.Instance);
                registry.Register<ImageRegion>(region);
            });
            builder.AddStartup((system, _) =>
            {
                var self = Akka.Cluster.Cluster.Get(system);
                node.Address = self.SelfAddress.ToString();
                WriterLog.Node = node.Address;
                WriterLog.Enabled = true;
                if (!cluster.IsMultiNode) self.Join(self.SelfAddress); // single node: a cluster of one
            });
        });
        services.AddSingleton<IImageService>(sp => new ImageService(
            sp.GetRequiredService<IRequiredActor<ImageStoreActor>>(),
            sp.GetRequiredService<IOptions<StoreOptions>>().Value,
            sp.GetRequiredService<Backing.BackingChains>()));
        return services;
    }
}
