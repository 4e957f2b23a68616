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
