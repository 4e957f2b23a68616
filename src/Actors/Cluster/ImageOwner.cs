using Akka.Actor;
using Akka.Event;
using QcowActors.Actors.Store;

namespace QcowActors.Actors.Cluster;

/// <summary>
/// The shard entity of one image: while it lives on a node, that node alone serves the image
/// (the local store opens it under <see cref="ImageOwnership"/>). It answers where the image is
/// served; on hand-off or idle passivation it lets the requests in flight finish (bounded), has
/// the store flush and close the file, and only then stops, so the next owner opens a clean image.
/// </summary>
public sealed class ImageOwner : ReceiveActor
{
    /// <summary>Requests in flight get this long to finish before the image is closed under them (well inside the 10 s hand-off phase).</summary>
    internal static readonly TimeSpan DrainLimit = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan CloseLimit = TimeSpan.FromSeconds(6);

    private readonly string _image;
    private readonly ClusterNode _node;
    private readonly ImageOwnership _ownership;
    private readonly IActorRef _store;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private bool _released;

    private sealed record Drained;
    private sealed record Closed;

    public ImageOwner(string image, ClusterNode node, ImageOwnership ownership, IActorRef store)
    {
        _image = image;
        _node = node;
        _ownership = ownership;
        _store = store;

        Receive<LocateImage>(_ => Sender.Tell(new ImageLocated(_image, _node.Address, _node.HttpUrl)));
        Receive<KeepImageOwned>(_ => { });
        Receive<ReleaseImage>(_ => BeginRelease());
    }

    public static Props Props(string image, ClusterNode node, ImageOwnership ownership, IActorRef store)
        => Akka.Actor.Props.Create(() => new ImageOwner(image, node, ownership, store));

    protected override void PreStart() => _ownership.Grant(_image);

    private void BeginRelease()
    {
        Become(Releasing);
        var drained = _ownership.BeginRelease(_image);
        drained.WaitAsync(DrainLimit).ContinueWith(_ => new Drained(), TaskScheduler.Default).PipeTo(Self);
    }

    private void Releasing()
    {
        Receive<Drained>(_ =>
        {
            _ownership.CloseForGood(_image);
            _store.Ask<LocalImageReleased>(new ReleaseLocalImage(_image), CloseLimit)
                .ContinueWith(t =>
                {
                    if (!t.IsCompletedSuccessfully) _log.Warning("Image {0} did not close within {1} on hand-off", _image, CloseLimit);
                    return new Closed();
                }, TaskScheduler.Default).PipeTo(Self);
        });
        Receive<Closed>(_ =>
        {
            _released = true;
            Context.Stop(Self);
        });
        // Located while releasing: the region sends nothing new during a hand-off, but a message
        // already delivered is answered with our address; the caller's lease then fails and it asks again.
        Receive<LocateImage>(_ => Sender.Tell(new ImageLocated(_image, _node.Address, _node.HttpUrl)));
        ReceiveAny(_ => { });
    }

    protected override void PostStop()
    {
        _ownership.Revoke(_image);
        // Stopped without a hand-off (region shut down, node downed): the image must not stay open
        // here, holding its lock, while another node takes it over.
        if (!_released) _store.Tell(new ReleaseLocalImage(_image));
    }
}
