using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Hosting;
using QcowActors.Actors.Cluster;
using QcowActors.Actors.Image;
using QcowActors.Actors.Store;

namespace QcowActors.Api.Endpoints;

/// <summary>
/// GET /debug/engine: what the node holds — shard entities, owned images, open images, metadata
/// cache bytes — and the cluster members it sees (address and status). A hook for tests and operators' debugging, off unless Diagnostics:EngineState is
/// true, and not part of the published API.
/// </summary>
internal static class DiagnosticsEndpoints
{
    public const string Setting = "Diagnostics:EngineState";

    public static void MapDiagnostics(this IEndpointRouteBuilder routes, IConfiguration configuration)
    {
        if (!configuration.GetValue(Setting, false)) return;
        routes.MapGet("/debug/engine", StateAsync).ExcludeFromDescription();
    }

    private static async Task<IResult> StateAsync(
        IRequiredActor<ImageRegion> region,
        IRequiredActor<ImageStoreActor> store,
        ImageOwnership ownership,
        MetadataBudget budget,
        ActorSystem system,
        CancellationToken ct)
    {
        var timeout = TimeSpan.FromSeconds(5);
        var shards = await region.ActorRef.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, timeout, ct);
        var local = await store.ActorRef.Ask<StoreState>(new GetStoreState(), timeout, ct);
        return Results.Ok(new
        {
            shardEntities = shards.Shards.Sum(s => s.EntityIds.Count),
            ownedImages = ownership.Count,
            openImages = local.OpenImages,
            metadataCacheBytes = budget.UsedBytes,
            metadataCacheSpareBytes = budget.SpareBytes,
            metadataCacheImages = budget.Members,
            members = Akka.Cluster.Cluster.Get(system).State.Members.Select(m => new { address = m.Address.ToString(), status = m.Status.ToString() }),
        });
    }
}
