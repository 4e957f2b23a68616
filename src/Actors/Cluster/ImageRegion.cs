using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Sharding;

namespace QcowActors.Actors.Cluster;

/// <summary>
/// Key of the shard region that places each image on exactly one node of the cluster (entity id =
/// image name). Resolve it with IRequiredActor&lt;ImageRegion&gt;.
/// </summary>
public sealed class ImageRegion
{
    /// <summary>The region's type name: part of every node's sharding state; never change it.</summary>
    public const string TypeName = "images";

    /// <summary>
    /// Shards the images are hashed into: 10 per node for the 10 nodes we support. Changing it moves
    /// images between shards, so nodes running different values would both own one image: never change it.
    /// </summary>
    public const int ShardCount = 100;
}

/// <summary>A message for the owner of one image; the image name is the entity id.</summary>
public interface IImageOwnerMessage
{
    string Image { get; }
}

/// <summary>Reply: <see cref="ImageLocated"/>, from the node that owns the image (placing it if nobody does).</summary>
public sealed record LocateImage(string Image) : IImageOwnerMessage;

/// <summary>The owner's cluster address and HTTP base URL (null until its HTTP server has started).</summary>
public sealed record ImageLocated(string Image, string Node, string? HttpUrl);

/// <summary>
/// The region's hand-off stop message (node leaving, idle passivation): stop taking requests,
/// close the image cleanly (flushed, fsynced, lock released), then stop.
/// </summary>
public sealed record ReleaseImage
{
    public static readonly ReleaseImage Instance = new();
}

/// <summary>Entity id = image name; shard = stable (MurmurHash) hash of it over <see cref="ImageRegion.ShardCount"/>.</summary>
public sealed class ImageMessageExtractor() : HashCodeMessageExtractor(ImageRegion.ShardCount)
{
    public override string? EntityId(object message) => (message as IImageOwnerMessage)?.Image;
}

/// <summary>
/// Shards are placed on the node with the fewest when first used (or when their node leaves) and
/// never moved while their node lives: a rebalance would hand images off, and a hand-off cuts
/// the transfers in flight after <see cref="ImageOwner.DrainLimit"/> — a backup streaming for
/// hours must not be cut because another node joined. A node that joins takes new shards and the
/// shards of nodes that leave.
/// </summary>
public sealed class NoRebalanceAllocationStrategy : IActorSystemDependentAllocationStrategy
{
    private readonly IShardAllocationStrategy _placement = ShardAllocationStrategy.LeastShardAllocationStrategy(absoluteLimit: 1, relativeLimit: 0.1);

    /// <summary>The placement reads cluster membership (which regions are up): the coordinator starts it with its system.</summary>
    public void Start(ActorSystem system) => (_placement as IActorSystemDependentAllocationStrategy)?.Start(system);

    public Task<IActorRef> AllocateShard(IActorRef requester, string shardId,
        IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations)
        => _placement.AllocateShard(requester, shardId, currentShardAllocations);

    public Task<IImmutableSet<string>> Rebalance(
        IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations,
        IImmutableSet<string> rebalanceInProgress)
        => Task.FromResult<IImmutableSet<string>>(ImmutableHashSet<string>.Empty);
}
