using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Event;
using QcowActors.Actors.Store;

namespace QcowActors.Actors.Cluster;

/// <summary>
/// The shard entity of one image: while it lives on a node, that node alone serves the image
/// (the local store opens it under <see cref="ImageOwnership"/>). It answers where the image is
/// served. It holds the one idle timer: when no request is in flight and none started or ended
/// within Storage:PassivateAfter, it stops new requests at that instant and passivates itself, so
/// idleness never cuts a transfer. On a hand-off (SIGTERM, a node leaving) requests in flight get
/// <see cref="DrainLimit"/> to finish and are then cut (their clients see an error, never a short
/// success); the store flushes and closes the file; only then does the entity stop, so the next
/// owner opens a clean image.
/// </summary>
public sealed class ImageOwner : ReceiveActor, IWithTimers
{
    /// <summary>Requests in flight get this long to finish before the image is closed under them (inside the 10 s hand-off timeout).</summary>
    internal static readonly TimeSpan DrainLimit = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan CloseLimit = TimeSpan.FromSeconds(6);

    private readonly string _image;
    private readonly ClusterNode _node;
    private readonly ImageOwnership _ownership;
    private readonly IActorRef _store;
    private readonly TimeSpan _idleAfter;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private bool _released;

    private sealed record Drained;
    private sealed record Closed;
    private sealed record CheckIdle;

    public ImageOwner(string image, ClusterNode node, ImageOwnership ownership, IActorRef store, TimeSpan idleAfter)
    {
        _image = image;
        _node = node;
        _ownership = ownership;
        _store = store;
        _idleAfter = idleAfter;

        Receive<LocateImage>(_ => Sender.Tell(new ImageLocated(_image, _node.Address, _node.HttpUrl)));
        Receive<CheckIdle>(_ =>
        {
            if (!_ownership.TryBeginIdleRelease(_image, _idleAfter)) return;
            // No lease can be taken from here; the shard buffers what arrives and sends ReleaseImage.
            Timers.CancelAll();
            Context.Parent.Tell(new Akka.Cluster.Sharding.Passivate(ReleaseImage.Instance));
        });
        Receive<ReleaseImage>(_ => BeginRelease());
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string image, ClusterNode node, ImageOwnership ownership, IActorRef store, TimeSpan idleAfter)
        => Akka.Actor.Props.Create(() => new ImageOwner(image, node, ownership, store, idleAfter));

    /// <summary>How often idleness is checked: a quarter of the window (so an image closes within 1.25 windows of its last request).</summary>
    internal static TimeSpan CheckInterval(TimeSpan idleAfter) => TimeSpan.FromMilliseconds(Math.Max(100, idleAfter.TotalMilliseconds / 4));

    protected override void PreStart()
    {
        _ownership.Grant(_image);
        Timers.StartPeriodicTimer("idle", new CheckIdle(), CheckInterval(_idleAfter));
    }

    private void BeginRelease()
    {
        Timers.CancelAll();
        Become(Releasing);
        var drained = _ownership.BeginRelease(_image);
        drained.WaitAsync(DrainLimit).ContinueWith(_ => new Drained(), TaskScheduler.Default).PipeTo(Self);
    }

    private void Releasing()
    {
        Receive<Drained>(_ =>
        {
            // Requests still running are cut here: their clients get an aborted response, not a short 200.
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
