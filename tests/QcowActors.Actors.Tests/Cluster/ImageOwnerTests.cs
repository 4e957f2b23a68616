using Akka.Actor;
using QcowActors.Actors.Cluster;
using QcowActors.Actors.Service;
using QcowActors.Actors.Store;
using QcowActors.Format;
using Xunit;

namespace QcowActors.Actors.Tests.Cluster;

/// <summary>The shard entity and the node-local store together: only an owned image is opened, and a hand-off closes it cleanly before the entity stops.</summary>
public sealed class ImageOwnerTests : EngineTestBase
{
    private readonly ImageOwnership _ownership = new();
    private readonly ClusterNode _node = new() { Address = "akka.tcp://QcowActors@127.0.0.1:1", HttpUrl = "http://127.0.0.1:2" };
    private readonly IActorRef _store;
    private readonly ImageService _service;

    public ImageOwnerTests()
    {
        string dir = Path.Combine(StoreDirectory, "owned");
        Directory.CreateDirectory(dir);
        OwnedDirectory = dir;
        var options = new StoreOptions { Directory = dir, AskTimeout = TimeSpan.FromSeconds(10) };
        _store = Sys.ActorOf(ImageStoreActor.Props(dir, FileSystem, Budget, options, _ownership), "owned-images");
        _service = new ImageService(_store, options);
    }

    private string OwnedDirectory { get; }

    [Fact]
    public async Task The_store_opens_an_image_only_while_its_entity_lives_here()
    {
        await _service.CreateAsync("a", 1 << 20, null, null, CancellationToken.None);
        var refused = await Assert.ThrowsAsync<ImageException>(() => _service.WriteAsync("a", 0, new byte[512], CancellationToken.None));
        Assert.Equal(ImageError.Unavailable, refused.Error);
        Assert.Contains("moving to another node", refused.Message);

        var owner = Sys.ActorOf(ImageOwner.Props("a", _node, _ownership, _store, TimeSpan.FromMinutes(5)));
        owner.Tell(new LocateImage("a"));
        var located = ExpectMsg<ImageLocated>();
        Assert.Equal(_node.Address, located.Node);
        Assert.Equal(_node.HttpUrl, located.HttpUrl);
        Assert.True(_ownership.Owns("a"));

        await _service.WriteAsync("a", 0, Enumerable.Repeat((byte)7, 512).ToArray(), CancellationToken.None);
        Assert.Equal(7, (await ReadAsync(_service, "a", 0, 512))[0]);
    }

    [Fact]
    public async Task Hand_off_waits_for_the_request_in_flight_then_closes_the_image_cleanly_and_stops()
    {
        await _service.CreateAsync("b", 1 << 20, null, null, CancellationToken.None);
        var owner = Sys.ActorOf(ImageOwner.Props("b", _node, _ownership, _store, TimeSpan.FromMinutes(5)));
        owner.Tell(new LocateImage("b"));
        ExpectMsg<ImageLocated>();
        var lease = _ownership.TryAcquire("b");
        Assert.NotNull(lease);
        await _service.WriteAsync("b", 4096, Enumerable.Repeat((byte)9, 4096).ToArray(), CancellationToken.None);

        Watch(owner);
        owner.Tell(ReleaseImage.Instance);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // the lease holds it
        Assert.False(_ownership.Owns("b"));
        // The request in flight still reaches its image.
        Assert.Equal(9, (await ReadAsync(_service, "b", 4096, 4096))[0]);
        lease!.Dispose();
        ExpectTerminated(owner, TimeSpan.FromSeconds(10));

        string path = Path.Combine(OwnedDirectory, "b.qcow2");
        Assert.False(File.Exists(Image.ImageSupervisor.MarkerPathFor(path)), "a handed-off image is closed cleanly (no open marker)");
        // Closed: the lock is free for the next owner.
        await using (var other = FileSystem.Open(path, writable: true)) { }
        var (exit, output) = QemuCheck(path);
        Assert.True(exit == 0, output);
        Assert.False(_ownership.MayOpen("b"));
    }

    [Fact]
    public async Task A_second_opener_of_a_held_image_gets_unavailable_and_nothing_is_written()
    {
        await _service.CreateAsync("c", 1 << 20, null, null, CancellationToken.None);
        string path = Path.Combine(OwnedDirectory, "c.qcow2");
        byte[] before = await File.ReadAllBytesAsync(path);
        await using (var holder = FileSystem.Open(path, writable: true))
        {
            Sys.ActorOf(ImageOwner.Props("c", _node, _ownership, _store, TimeSpan.FromMinutes(5))).Tell(new LocateImage("c"));
            ExpectMsg<ImageLocated>();
            var e = await Assert.ThrowsAsync<ImageException>(() => _service.WriteAsync("c", 0, new byte[4096], CancellationToken.None));
            Assert.Equal(ImageError.Unavailable, e.Error);
            Assert.Contains("held open by another process", e.Message);
        }
        Assert.Equal(before, await File.ReadAllBytesAsync(path));
    }

    [Fact]
    public async Task An_image_stays_open_while_a_request_is_in_flight_past_the_idle_window_and_closes_once_idle()
    {
        var idleAfter = TimeSpan.FromMilliseconds(400);
        await _service.CreateAsync("d", 1 << 20, null, null, CancellationToken.None);
        var shard = Sys.ActorOf(Akka.Actor.Props.Create(() => new ShardStub(ImageOwner.Props("d", _node, _ownership, _store, idleAfter))), "shard-d");
        shard.Tell(new LocateImage("d"));
        ExpectMsg<ImageLocated>();
        string path = Path.Combine(OwnedDirectory, "d.qcow2");

        // A request that streams for six idle windows: nothing closes the image under it.
        using (var lease = _ownership.TryAcquire("d"))
        {
            Assert.NotNull(lease);
            for (int k = 0; k < 6; k++)
            {
                await _service.WriteAsync("d", k * 4096L, Enumerable.Repeat((byte)(k + 1), 4096).ToArray(), CancellationToken.None);
                await Task.Delay(idleAfter);
            }
            Assert.True(_ownership.Owns("d"), "an image with a request in flight was released as idle");
            Assert.False(lease!.Revoked.IsCancellationRequested);
            Assert.Throws<Io.ImageLockedException>(() => FileSystem.Open(path, writable: true));
        }

        // Idle now: within the window and a check interval it is flushed, closed and released.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (_ownership.Count > 0 && clock.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(50);
        Assert.Equal(0, _ownership.Count);
        Assert.True(clock.Elapsed >= idleAfter, $"released {clock.Elapsed} after the last request, before the idle window");
        Assert.False(File.Exists(Image.ImageSupervisor.MarkerPathFor(path)), "an idle image is closed cleanly");
        await using (FileSystem.Open(path, writable: true)) { }
        var (exit, output) = QemuCheck(path);
        Assert.True(exit == 0, output);
    }

    /// <summary>Stands in for the shard: starts the entity and answers its Passivate with the stop message, as sharding does.</summary>
    private sealed class ShardStub : ReceiveActor
    {
        public ShardStub(Akka.Actor.Props entity)
        {
            var child = Context.ActorOf(entity, "entity");
            Receive<Akka.Cluster.Sharding.Passivate>(p => child.Tell(p.StopMessage));
            ReceiveAny(m => child.Forward(m));
        }
    }
}
