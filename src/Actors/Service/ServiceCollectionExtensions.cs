using Akka;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using QcowActors.Actors.Io;
using QcowActors.Actors.Store;

namespace QcowActors.Actors.Service;

public static class ServiceCollectionExtensions
{
    /// <summary>
    /// The actor system's name: part of every cluster address (akka.tcp://QcowActors@host:port),
    /// so operators' seed-node settings and the nodes must agree on it. Never change it.
    /// </summary>
    public const string ActorSystemName = "QcowActors";

    /// <summary>
    /// Registers the actor system (Akka.Hosting), the store actor and <see cref="IImageService"/>.
    /// Options come from IOptions&lt;StoreOptions&gt; (bind the "Storage" section before calling).
    /// On shutdown every open image is flushed and closed cleanly before the actor system stops.
    /// </summary>
    public static IServiceCollection AddQcowStore(this IServiceCollection services)
    {
        services.TryAddSingleton<IImageFileSystem, DiskFileSystem>();
        services.AddAkka(ActorSystemName, (builder, sp) =>
        {
            var options = sp.GetRequiredService<IOptions<StoreOptions>>().Value;
            var fs = sp.GetRequiredService<IImageFileSystem>();
            builder.AddHocon(
                "akka.coordinated-shutdown.phases.before-actor-system-terminate.timeout = 120s\n" +
                "akka.loglevel = INFO\n", HoconAddMode.Prepend);
            builder.WithActors((system, registry) =>
            {
                var store = system.ActorOf(ImageStoreActor.Props(Path.GetFullPath(options.Directory), fs, options.PassivateAfter,
                    new Image.CacheBudget(options.L2CacheBytesPerImage, options.L2CacheBytesTotal),
                    new Image.CacheBudget(options.RefcountCacheBytesPerImage, options.RefcountCacheBytesTotal)), "images");
                registry.Register<ImageStoreActor>(store);
                CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseBeforeActorSystemTerminate, "close-images", async () =>
                {
                    await store.Ask<StoreStopped>(new StopAllImages(), TimeSpan.FromSeconds(110)).ConfigureAwait(false);
                    return Done.Instance;
                });
            });
        });
        services.AddSingleton<IImageService>(sp => new ImageService(
            sp.GetRequiredService<IRequiredActor<ImageStoreActor>>(),
            sp.GetRequiredService<IOptions<StoreOptions>>().Value));
        return services;
    }
}
