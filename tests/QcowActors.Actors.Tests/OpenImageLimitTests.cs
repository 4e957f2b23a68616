using Akka.Actor;
using QcowActors.Actors.Cluster;
using QcowActors.Actors.Service;
using QcowActors.Actors.Store;
using Xunit;

namespace QcowActors.Actors.Tests;

/// <summary>Storage:MaxOpenImages: past it the least recently used idle image is closed; with none idle, a new one waits its turn (503).</summary>
public sealed class OpenImageLimitTests() : EngineTestBase(configure: o => o.MaxOpenImages = 2)
{
    private async Task<int> OpenImagesAsync(IActorRef store) => (await store.Ask<StoreState>(new GetStoreState(), TimeSpan.FromSeconds(5))).OpenImages;

    [Fact]
    public async Task Opening_one_image_too_many_closes_the_least_recently_used_and_every_image_still_reads_back()
    {
        foreach (var name in new[] { "a", "b", "c" })
        {
            await Service.CreateAsync(name, 1 << 20, null, null, default);
            await Service.WriteAsync(name, 0, new[] { (byte)name[0] }, default);
        }
        // a was opened first and not used since: it is the one closed when c opened.
        for (int i = 0; i < 100 && await OpenImagesAsync(Store) > 2; i++) await Task.Delay(20);
        Assert.Equal(2, await OpenImagesAsync(Store));
        var identity = await Sys.ActorSelection("/user/images/a").Ask<ActorIdentity>(new Identify(1), TimeSpan.FromSeconds(3));
        Assert.Null(identity.Subject);
        foreach (var name in new[] { "a", "b", "c" })
            Assert.Equal((byte)name[0], (await ReadAsync(name, 0, 1))[0]);
        for (int i = 0; i < 100 && await OpenImagesAsync(Store) > 2; i++) await Task.Delay(20);
        Assert.True(await OpenImagesAsync(Store) <= 2);
        var (exit, output) = QemuCheck(ImagePath("a"));
        Assert.True(exit == 0, output);
    }

    [Fact]
    public async Task With_every_open_image_busy_a_new_one_is_refused_with_unavailable_until_one_is_idle()
    {
        var ownership = new ImageOwnership();
        var options = new StoreOptions { Directory = StoreDirectory, AskTimeout = TimeSpan.FromSeconds(10), MaxOpenImages = 2 };
        var store = Sys.ActorOf(ImageStoreActor.Props(StoreDirectory, FileSystem, Budget, options, ownership), "owned");
        var service = new ImageService(store, options);
        foreach (var name in new[] { "x", "y", "z" })
        {
            await service.CreateAsync(name, 1 << 20, null, null, default);
            ownership.Grant(name);
        }
        using (ownership.TryAcquire("x"))
        using (ownership.TryAcquire("y"))
        {
            await service.WriteAsync("x", 0, new byte[512], default);
            await service.WriteAsync("y", 0, new byte[512], default);
            var refused = await Assert.ThrowsAsync<ImageException>(() => service.WriteAsync("z", 0, new byte[512], default));
            Assert.Equal(ImageError.Unavailable, refused.Error);
            Assert.Contains("Storage:MaxOpenImages", refused.Message);
        }
        await service.WriteAsync("z", 0, new byte[512], default); // x and y are idle now: one of them gives way
        for (int i = 0; i < 100 && await OpenImagesAsync(store) > 2; i++) await Task.Delay(20); // it closes as z opens
        Assert.Equal(2, await OpenImagesAsync(store));
    }
}
