using System.Diagnostics;
using QcowActors.Actors.Service;
using QcowActors.Actors.Store;
using Xunit;

namespace QcowActors.Actors.Tests;

/// <summary>Closing or deleting an image while requests are inside it never stalls them (they need its answers to drain).</summary>
public sealed class CloseRaceTests() : EngineTestBase(new HoldingFileSystem())
{
    [Fact]
    public async Task A_write_inside_the_image_when_it_passivates_still_gets_its_commit_and_completes()
    {
        var seam = (HoldingFileSystem)FileSystem;
        await Service.CreateAsync("race", 256L << 20, null, null, default);
        var data = new byte[100_000];
        new Random(11).NextBytes(data);
        seam.HoldWrites();
        var write = Service.WriteAsync("race", 0, data, default); // inside the gate, needs CommitWrite later
        await seam.WriteHeld.WaitAsync(TimeSpan.FromSeconds(5));

        var clock = Stopwatch.StartNew();
        Store.Tell(new Passivate("race"), Akka.Actor.ActorRefs.NoSender);
        await Task.Delay(100); // let the close begin: it now waits for the write to leave the gate
        seam.Release();
        await write.WaitAsync(TimeSpan.FromSeconds(8));
        var info = await Service.GetInfoAsync("race", default);
        Assert.Equal(256L << 20, info.VirtualSize);
        Assert.Equal(data, await ReadAsync("race", 0, data.Length));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Deleting_an_image_under_running_writers_neither_stalls_them_nor_the_delete()
    {
        await Service.CreateAsync("doomed", 256L << 20, null, null, default);
        var clock = Stopwatch.StartNew();
        var writers = Enumerable.Range(0, 32).Select(async w =>
        {
            var rng = new Random(w);
            for (int k = 0; k < 20; k++)
            {
                try { await Service.WriteAsync("doomed", rng.NextInt64(0, (256L << 20) - 5000), new byte[4096], default); }
                catch (ImageException e) when (e.Error == ImageError.NotFound) { return; }
            }
        }).ToList();
        await Task.Delay(20);
        await Service.DeleteAsync("doomed", default);
        await Task.WhenAll(writers);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"took {clock.Elapsed}");
        Assert.False(File.Exists(ImagePath("doomed")));
        var gone = await Assert.ThrowsAsync<ImageException>(() => Service.GetInfoAsync("doomed", default));
        Assert.Equal(ImageError.NotFound, gone.Error);
    }
}
