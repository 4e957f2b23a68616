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

/// <summary>Sent by the owner's own node while it serves the image, so the region does not passivate it as idle.</summary>
public sealed record KeepImageOwned(string Image) : IImageOwnerMessage;

/// <summary>
/// The region's hand-off stop message (rebalance, node leaving, idle passivation): stop taking
/// requests, close the image cleanly (flushed, fsynced, lock released), then stop.
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
