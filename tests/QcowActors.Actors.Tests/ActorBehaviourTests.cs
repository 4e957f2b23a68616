using Akka.Actor;
using QcowActors.Actors.Image;
using Xunit;

namespace QcowActors.Actors.Tests;

public sealed class HeldWriteTests() : EngineTestBase(new HoldingFileSystem())
{
    private HoldingFileSystem Seam => (HoldingFileSystem)FileSystem;

    [Fact]
    public async Task Read_elsewhere_in_an_L2_table_completes_while_a_write_in_that_table_is_held_at_the_io_seam()
    {
        await Service.CreateAsync("held", 1L << 30, null, null, default);
        var first = Enumerable.Repeat((byte)0x11, 65536).ToArray();
        await Service.WriteAsync("held", 0, first, default);

        Seam.HoldWrites();
        var second = Enumerable.Repeat((byte)0x22, 65536).ToArray();
        var held = Service.WriteAsync("held", 10 * 65536, second, default); // same L2 table (covers 512 MiB)
        await Seam.WriteHeld.WaitAsync(TimeSpan.FromSeconds(10));

        // The table's actor itself answers a mapping while the write is held (no I/O in its mailbox)...
        var mapping = await Store.Ask<RangeMapping>(new MapRange("held", 0, 65536), TimeSpan.FromSeconds(10));
        Assert.Single(mapping.Runs);
        Assert.False(mapping.Runs[0].IsZero);
        // ...and a read through the service completes with the old bytes.
        var read = ReadAsync("held", 0, 65536);
        var done = await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(10)));
        Assert.Same(read, done);
        Assert.Equal(first, await read);
        var sameCluster = await ReadAsync("held", 10 * 65536, 16);
        Assert.All(sameCluster, b => Assert.Equal(0, b)); // not yet published: still the old (zero) content
        Assert.False(held.IsCompleted);

        Seam.Release();
        await held.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(second, await ReadAsync("held", 10 * 65536, 65536));
    }
}

public sealed class SupervisionTests : EngineTestBase
{
    [Fact]
    public async Task A_failing_L2_actor_is_restarted_without_losing_acknowledged_writes()
    {
        await Service.CreateAsync("crash", 1L << 30, null, null, default);
        var data = new byte[300_000];
        new Random(7).NextBytes(data);
        await Service.WriteAsync("crash", 123_456, data, default); // acknowledged, not flushed

        await EventFilter.Exception<InvalidOperationException>(contains: "crashed on request")
            .ExpectOneAsync(() => { Store.Tell(new CrashL2Table("crash", 0)); return Task.CompletedTask; });

        Assert.Equal(data, await ReadAsync("crash", 123_456, data.Length));
        var more = new byte[70_000];
        new Random(8).NextBytes(more);
        await Service.WriteAsync("crash", 5_000_000, more, default);
        await Service.FlushAsync("crash", default);
        Assert.Equal(more, await ReadAsync("crash", 5_000_000, more.Length));
        var (exit, output) = QemuCheck(ImagePath("crash"));
        Assert.True(exit == 0, output);
        Assert.Equal(data, await ReadAsync("crash", 123_456, data.Length));
    }
}

public sealed class PassivationTests() : EngineTestBase(passivateAfter: TimeSpan.FromMilliseconds(500))
{
    [Fact]
    public async Task Passivation_closes_the_image_and_reopen_keeps_the_data()
    {
        await Service.CreateAsync("idle", 1L << 30, null, null, default);
        var data = new byte[200_000];
        new Random(3).NextBytes(data);
        await Service.WriteAsync("idle", 1_000_000, data, default); // no explicit flush: passivation must flush

        var supervisor = await WaitUntilClosedAsync("idle");
        Assert.Null(supervisor);
        Assert.False(File.Exists(ImageSupervisor.MarkerPathFor(ImagePath("idle"))), "a clean close removes the open marker");
        var (exit, output) = QemuCheck(ImagePath("idle"));
        Assert.True(exit == 0, output);

        Assert.Equal(data, await ReadAsync("idle", 1_000_000, data.Length));
    }

    private async Task<IActorRef?> WaitUntilClosedAsync(string name)
    {
        for (int i = 0; i < 100; i++)
        {
            await Task.Delay(100);
            var identity = await Sys.ActorSelection($"/user/images/{name}").Ask<ActorIdentity>(new Identify(1), TimeSpan.FromSeconds(3));
            if (identity.Subject is null) return null;
        }
        return Sys.ActorSelection($"/user/images/{name}").ResolveOne(TimeSpan.FromSeconds(1)).Result;
    }
}
