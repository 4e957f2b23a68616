using Microsoft.Extensions.DependencyInjection;

namespace QcowActors.Actors.Service;

public static class ServiceCollectionExtensions
{
    /// <summary>
    /// Registers the actor system (Akka.Hosting), the store actor and <see cref="IImageService"/>.
    /// Options come from the "Storage" configuration section (bind StoreOptions before calling).
    /// </summary>
    public static IServiceCollection AddQcowStore(this IServiceCollection services)
        => throw new NotImplementedException();
}
