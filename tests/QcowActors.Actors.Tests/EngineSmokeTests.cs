using QcowActors.Actors.Service;
using Xunit;

namespace QcowActors.Actors.Tests;

public sealed class EngineSmokeTests : EngineTestBase
{
    [Fact]
    public async Task Write_flush_and_read_back_passes_qemu_check()
    {
        await Service.CreateAsync("a", 1L << 30, null, null, default);
        var data = new byte[200_000];
        new Random(1).NextBytes(data);
        await Service.WriteAsync("a", 65_000, data, default);
        await Service.FlushAsync("a", default);
        var back = await ReadAsync("a", 65_000, data.Length);
        Assert.Equal(data, back);
        var zeros = await ReadAsync("a", 0, 65_000);
        Assert.All(zeros, b => Assert.Equal(0, b));
        var (exit, output) = QemuCheck(ImagePath("a"));
        Assert.True(exit == 0, output);
    }
}
