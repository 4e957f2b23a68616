using System.Globalization;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// kill -9 at random moments, mid-flush included, QCOWACTORS_CRASH_ITERATIONS times (20 here;
/// scripts/crash-loop.sh runs 200): after every restart each byte a flush acknowledged reads back,
/// and once the reopen has repaired the image, qemu-img check finds it clean — no corruption and no
/// leaks. A write not yet covered by an acknowledged flush may read old or new: what the restarted
/// server reads there becomes the model.
/// </summary>
[Collection(LoadCollection.Name)]
public sealed class CrashLoopTests(ITestOutputHelper output)
{
    private const int MiB = 1024 * 1024;
    private const long DiskSize = 64L * MiB;

    [Fact]
    public async Task Every_flushed_byte_survives_kill_9_at_random_moments_and_the_repaired_image_checks_clean()
    {
        int iterations = int.TryParse(Environment.GetEnvironmentVariable("QCOWACTORS_CRASH_ITERATIONS"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 20;
        using var store = new TempDirectory("crash-loop");
        string path = Path.Combine(store.Path, "crash.qcow2");
        Qemu.CreateQcow2(path, DiskSize);
        using var model = DiskModel.InMemory(DiskSize);
        var uncertain = new List<(long Offset, long Length)>();
        var rng = TestSeed.Create(output, 9009, "crash loop");
        long verified = 0, acknowledged = 0;
        int midFlush = 0;

        // One more start than kills: the last restart verifies the last kill.
        for (int i = 0; i <= iterations; i++)
        {
            await using var server = await ServerProcess.StartAsync(new ServerOptions { StoreDirectory = store.Path });
            // The restart: flushed bytes are there; what was in doubt becomes what the disk says.
            var disk = await server.Api.GetAllAsync("crash");
            foreach (var (offset, length) in uncertain) model.Write(offset, disk.AsSpan((int)offset, (int)length));
            uncertain.Clear();
            Assert.True(model.Describe(0, disk) is null, $"iteration {i}: {model.Describe(0, disk)}");
            verified += disk.Length;
            // The open repaired it (marker or not): closed now, qemu-img check must find nothing at all.
            using (var close = await server.Client.PostAsync("images/crash/close", null))
                Assert.True(close.IsSuccessStatusCode, $"iteration {i}: close answered {(int)close.StatusCode}");
            var check = Qemu.Check(path);
            Assert.True(check.IsClean, $"iteration {i}: {check}");
            if (i == iterations) break;

            // Writes (mostly unflushed) and flushes, one at a time, until the kill lands.
            var killAt = TimeSpan.FromMilliseconds(rng.Next(20, 400));
            int killing = 0;
            var killer = Task.Delay(killAt).ContinueWith(_ =>
            {
                Volatile.Write(ref killing, 1); // before the signal: a request it cuts is expected to fail
                server.Kill();
            }, TaskScheduler.Default);
            var pending = new List<(long Offset, long Length, byte[] Data)>();
            while (!killer.IsCompleted)
            {
                bool flush = rng.Next(5) == 0;
                try
                {
                    if (flush)
                    {
                        await server.Api.FlushAsync("crash");
                        foreach (var (offset, _, data) in pending) model.Write(offset, data);
                        acknowledged += pending.Sum(p => p.Length);
                        pending.Clear();
                    }
                    else
                    {
                        int length = rng.Next(1, 300_000);
                        long offset = rng.NextInt64(0, DiskSize - length);
                        var data = RandomWorkload.Data(rng, length);
                        pending.Add((offset, length, data));
                        await server.Api.PutAsync("crash", offset, data, flush: false);
                    }
                }
                catch (Exception) when (Volatile.Read(ref killing) == 1)
                {
                    if (flush) midFlush++;
                    break;
                }
            }
            await killer;
            uncertain.AddRange(pending.Select(p => (p.Offset, (long)p.Length)));
        }
        output.WriteLine($"crash loop: {iterations} kill -9s ({midFlush} during a flush), {acknowledged / (double)MiB:0.0} MiB acknowledged by flushes, "
            + $"{verified / (double)MiB:0} MiB verified after restarts, 0 failures");
    }
}
