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
        _store = Sys.ActorOf(ImageStoreActor.Props(dir, FileSystem, TimeSpan.FromMinutes(5), ownership: _ownership), "owned-images");
        _service = new ImageService(_store, new StoreOptions { Directory = dir, AskTimeout = TimeSpan.FromSeconds(10) });
    }

    private string OwnedDirectory { get; }

    [Fact]
    public async Task The_store_opens_an_image_only_while_its_entity_lives_here()
    {
        await _service.CreateAsync("a", 1 << 20, null, null, CancellationToken.None);
        var refused = await Assert.ThrowsAsync<ImageException>(() => _service.WriteAsync("a", 0, new byte[512], CancellationToken.None));
        Assert.Equal(ImageError.Unavailable, refused.Error);
        Assert.Contains("moving to another node", refused.Message);

        var owner = Sys.ActorOf(ImageOwner.Props("a", _node, _ownership, _store));
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
        var owner = Sys.ActorOf(ImageOwner.Props("b", _node, _ownership, _store));
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
            Sys.ActorOf(ImageOwner.Props("c", _node, _ownership, _store)).Tell(new LocateImage("c"));
            ExpectMsg<ImageLocated>();
            var e = await Assert.ThrowsAsync<ImageException>(() => _service.WriteAsync("c", 0, new byte[4096], CancellationToken.None));
            Assert.Equal(ImageError.Unavailable, e.Error);
            Assert.Contains("held open by another process", e.Message);
        }
        Assert.Equal(before, await File.ReadAllBytesAsync(path));
    }
}
