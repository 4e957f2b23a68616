using System.Diagnostics;
using System.Globalization;

namespace QcowActors.Benchmarks;

/// <summary>
/// The engine's side of <c>qemu-img bench -w -d 32 -s 4k -S 64k -c N</c>: an empty 2 GiB image,
/// N 4 KiB writes at a 64 KiB stride (each allocates a cluster) with 32 in flight, then one flush.
/// Prints <c>strided-writes iops=N seconds=S count=C</c>, IOPS over the writes and the flush.
/// </summary>
internal static class StridedWrites
{
    private const int Depth = 32;
    private const int WriteSize = 4096;
    private const long Stride = 64 * 1024;
    private const long ImageSize = 2 * Engine.GiB;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length < 2 || args.Length > 3)
        {
            Console.Error.WriteLine("usage: --strided-writes <dir> [count]");
            return 2;
        }
        string dir = args[1];
        int count = 32768;
        if (args.Length == 3 && (!int.TryParse(args[2], NumberStyles.None, CultureInfo.InvariantCulture, out count) || count <= 0))
        {
            Console.Error.WriteLine($"count must be a positive integer, not '{args[2]}'");
            return 2;
        }
        // Like qemu-img bench: the offset wraps at the end of the image.
        long slots = ImageSize / Stride;
        string image = "strided-" + DateTime.UtcNow.ToString("yyyyMMddHHmmssfff", CultureInfo.InvariantCulture);

        await using var engine = new Engine(dir);
        await engine.Service.CreateAsync(image, ImageSize, null, null, CancellationToken.None);
        var data = new byte[WriteSize];
        new Random(11).NextBytes(data);
        // Open the image before the clock starts, as qemu-img bench does before its first request.
        await engine.Service.GetInfoAsync(image, CancellationToken.None);

        var clock = Stopwatch.StartNew();
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, Depth).Select(_ => Task.Run(async () =>
        {
            for (int i = Interlocked.Increment(ref next); i < count; i = Interlocked.Increment(ref next))
                await engine.Service.WriteAsync(image, i % slots * Stride, data, CancellationToken.None).ConfigureAwait(false);
        })));
        double writesSeconds = clock.Elapsed.TotalSeconds;
        await engine.Service.FlushAsync(image, CancellationToken.None);
        double seconds = clock.Elapsed.TotalSeconds;

        Console.Error.WriteLine(FormattableString.Invariant(
            $"image {engine.PathOf(image)}: writes {writesSeconds:F3} s, flush {seconds - writesSeconds:F3} s"));
        Console.WriteLine(FormattableString.Invariant(
            $"strided-writes iops={Math.Round(count / seconds)} seconds={seconds:F3} count={count}"));
        return 0;
    }
}
