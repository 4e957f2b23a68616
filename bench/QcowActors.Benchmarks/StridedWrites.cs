using System.Diagnostics;
using System.Globalization;

namespace QcowActors.Benchmarks;

/// <summary>
/// The engine's side of <c>qemu-img bench -w -d 32 -s 4k -S 64k -c N</c>: an empty 2 GiB image,
/// N 4 KiB writes at a 64 KiB stride (each allocates a cluster) with 32 in flight, then one flush.
/// Prints <c>strided-writes iops=N seconds=S count=C</c>, IOPS over the writes and the flush.
/// <para>
/// A fresh .NET process runs its first second or so partly on unoptimised (tier-0) code; a server
/// is past that. <c>--warmup</c> first runs the same pattern, untimed, on a scratch image that is
/// then deleted (measured: within run-to-run noise; DOTNET_TieredCompilation=0 gained ~20%).
/// </para>
/// </summary>
internal static class StridedWrites
{
    private const int Depth = 32;
    private const int WriteSize = 4096;
    private const long Stride = 64 * 1024;
    private const long ImageSize = 2 * Engine.GiB;
    private const int WarmupWrites = 32768;

    public static async Task<int> RunAsync(string[] args)
    {
        bool warmup = args.Contains("--warmup");
        var rest = args.Where(a => a != "--warmup").ToArray();
        if (rest.Length < 2 || rest.Length > 3)
        {
            Console.Error.WriteLine("usage: --strided-writes <dir> [count] [--warmup]");
            return 2;
        }
        string dir = rest[1];
        int count = 32768;
        if (rest.Length == 3 && (!int.TryParse(rest[2], NumberStyles.None, CultureInfo.InvariantCulture, out count) || count <= 0))
        {
            Console.Error.WriteLine($"count must be a positive integer, not '{rest[2]}'");
            return 2;
        }
        string stamp = DateTime.UtcNow.ToString("yyyyMMddHHmmssfff", CultureInfo.InvariantCulture);
        var data = new byte[WriteSize];
        new Random(11).NextBytes(data);

        await using var engine = new Engine(dir);
        if (warmup)
        {
            string scratch = "warmup-" + stamp;
            await engine.Service.CreateAsync(scratch, ImageSize, null, null, CancellationToken.None);
            await engine.Service.GetInfoAsync(scratch, CancellationToken.None);
            var warm = Stopwatch.StartNew();
            await WriteAsync(engine, scratch, data, WarmupWrites);
            double warmWrites = warm.Elapsed.TotalSeconds;
            await engine.Service.FlushAsync(scratch, CancellationToken.None);
            Console.Error.WriteLine(FormattableString.Invariant(
                $"warm-up (untimed): writes {warmWrites:F3} s, flush {warm.Elapsed.TotalSeconds - warmWrites:F3} s"));
            await engine.Service.DeleteAsync(scratch, CancellationToken.None);
            await Task.Delay(500); // let the background tier-1 compilations finish
        }

        string image = "strided-" + stamp;
        await engine.Service.CreateAsync(image, ImageSize, null, null, CancellationToken.None);
        // Open the image before the clock starts, as qemu-img bench does before its first request.
        await engine.Service.GetInfoAsync(image, CancellationToken.None);

        var clock = Stopwatch.StartNew();
        await WriteAsync(engine, image, data, count);
        double writesSeconds = clock.Elapsed.TotalSeconds;
        await engine.Service.FlushAsync(image, CancellationToken.None);
        double seconds = clock.Elapsed.TotalSeconds;

        Console.Error.WriteLine(FormattableString.Invariant(
            $"image {engine.PathOf(image)}: writes {writesSeconds:F3} s, flush {seconds - writesSeconds:F3} s{(warmup ? " (after warm-up)" : "")}"));
        Console.WriteLine(FormattableString.Invariant(
            $"strided-writes iops={Math.Round(count / seconds)} seconds={seconds:F3} count={count}"));
        return 0;
    }

    /// <summary>count writes, Depth in flight; like qemu-img bench the offset wraps at the end of the image.</summary>
    private static Task WriteAsync(Engine engine, string image, byte[] data, int count)
    {
        long slots = ImageSize / Stride;
        int next = -1;
        return Task.WhenAll(Enumerable.Range(0, Depth).Select(_ => Task.Run(async () =>
        {
            for (int i = Interlocked.Increment(ref next); i < count; i = Interlocked.Increment(ref next))
                await engine.Service.WriteAsync(image, i % slots * Stride, data, CancellationToken.None).ConfigureAwait(false);
        })));
    }
}
