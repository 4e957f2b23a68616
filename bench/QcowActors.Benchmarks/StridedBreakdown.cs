using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using Akka.Actor;
using QcowActors.Actors.Image;

namespace QcowActors.Benchmarks;

/// <summary>
/// Where the time of a strided allocating write goes: the same pattern as <see cref="StridedWrites"/>,
/// but each write replays the steps of <c>ImageService.WriteAsync</c> against the store actor with a
/// stopwatch around each: gate (enter the I/O gate of the handle attached once, as the service's
/// handle cache does), prepare (ask PrepareWrite: L2 actor → supervisor allocates and counts → L2
/// actor → reply), data (the bytes written as ImageService.ExecuteAsync/FillClusterAsync do: 4 KiB
/// when the plan says no fill, else the whole cluster), commit (ask CommitWrite).
/// Runs the pattern once untimed on a scratch image first (JIT warm-up).
/// Usage: <c>--strided-breakdown &lt;dir&gt; [count] [depth]</c>.
/// </summary>
internal static class StridedBreakdown
{
    private const int WriteSize = 4096;
    private const long Stride = 64 * 1024;
    private const long ImageSize = 2 * Engine.GiB;

    private sealed class Totals
    {
        public long Gate, Prepare, Data, Commit, FilledClusters;
        public void Add(long gate, long prepare, long data, long commit)
        {
            Interlocked.Add(ref Gate, gate);
            Interlocked.Add(ref Prepare, prepare);
            Interlocked.Add(ref Data, data);
            Interlocked.Add(ref Commit, commit);
        }
    }

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length < 2)
        {
            Console.Error.WriteLine("usage: --strided-breakdown <dir> [count] [depth]");
            return 2;
        }
        int count = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 32768;
        int depth = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 32;
        string stamp = DateTime.UtcNow.ToString("yyyyMMddHHmmssfff", CultureInfo.InvariantCulture);
        var data = new byte[WriteSize];
        new Random(11).NextBytes(data);

        await using var engine = new Engine(args[1]);
        // Untimed warm-up on a scratch image, as in StridedWrites: the timed pass runs optimised code.
        await PassAsync(engine, "warmup-" + stamp, data, 32768, depth, delete: true);
        await Task.Delay(500);
        string image = "breakdown-" + stamp;
        var (totals, writes, seconds) = await PassAsync(engine, image, data, count, depth, delete: false);

        double Us(long ticks) => ticks * 1e6 / Stopwatch.Frequency / count;
        Console.WriteLine(FormattableString.Invariant(
            $"strided-breakdown depth={depth} count={count} iops={Math.Round(count / seconds)} writes={writes:F3}s flush={seconds - writes:F3}s"));
        Console.WriteLine(FormattableString.Invariant(
            $"  mean latency per write (us): gate={Us(totals.Gate):F1} prepare+allocate={Us(totals.Prepare):F1} data={Us(totals.Data):F1} commit={Us(totals.Commit):F1} total={Us(totals.Gate + totals.Prepare + totals.Data + totals.Commit):F1}; zero-filled clusters={totals.FilledClusters}"));
        var check = Qemu("check", engine.PathOf(image));
        Console.WriteLine("  qemu-img check: " + check.Split('\n').FirstOrDefault(l => l.Length > 0));
        await engine.Service.DeleteAsync(image, CancellationToken.None);
        return 0;
    }

    private static async Task<(Totals Totals, double WritesSeconds, double Seconds)> PassAsync(
        Engine engine, string image, byte[] data, int count, int depth, bool delete)
    {
        long slots = ImageSize / Stride;
        var timeout = TimeSpan.FromMinutes(5);
        var store = engine.Store;
        var totals = new Totals();
        await engine.Service.CreateAsync(image, ImageSize, null, null, CancellationToken.None);
        var handle = await store.Ask<ImageHandle>(new AttachImage(image), timeout);

        var clock = Stopwatch.StartNew();
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, depth).Select(_ => Task.Run(async () =>
        {
            for (int i = Interlocked.Increment(ref next); i < count; i = Interlocked.Increment(ref next))
            {
                long offset = i % slots * Stride;
                long t0 = Stopwatch.GetTimestamp();
                using var token = handle.Gate.TryEnter() ?? throw new InvalidOperationException("image closing");
                long t1 = Stopwatch.GetTimestamp();
                var plan = await store.Ask<WritePlan>(new PrepareWrite(image, offset, WriteSize), timeout).ConfigureAwait(false);
                long t2 = Stopwatch.GetTimestamp();
                foreach (var c in plan.Clusters)
                {
                    if (c.Fill == ClusterFill.None)
                    {
                        await handle.File.WriteAsync(data, c.HostCluster + c.OffsetInCluster, CancellationToken.None).ConfigureAwait(false);
                        continue;
                    }
                    Interlocked.Increment(ref totals.FilledClusters);
                    int cs = handle.Layout.ClusterSize;
                    byte[] buffer = ArrayPool<byte>.Shared.Rent(cs);
                    try
                    {
                        var cluster = buffer.AsMemory(0, cs);
                        if (c.Fill == ClusterFill.CopyFrom) await handle.File.ReadAsync(cluster, c.SourceHost, CancellationToken.None).ConfigureAwait(false);
                        else cluster.Span.Clear();
                        data.AsSpan().CopyTo(cluster.Span[c.OffsetInCluster..]);
                        await handle.File.WriteAsync(cluster, c.HostCluster, CancellationToken.None).ConfigureAwait(false);
                    }
                    finally { ArrayPool<byte>.Shared.Return(buffer); }
                }
                long t3 = Stopwatch.GetTimestamp();
                if (!plan.InPlaceOnly)
                    await store.Ask<WriteCommitted>(new CommitWrite(image, plan.L1Index, plan.PlanId), timeout).ConfigureAwait(false);
                long t4 = Stopwatch.GetTimestamp();
                totals.Add(t1 - t0, t2 - t1, t3 - t2, t4 - t3);
            }
        })));
        double writes = clock.Elapsed.TotalSeconds;
        await engine.Service.FlushAsync(image, CancellationToken.None);
        double seconds = clock.Elapsed.TotalSeconds;
        if (delete) await engine.Service.DeleteAsync(image, CancellationToken.None);
        return (totals, writes, seconds);
    }

    private static string Qemu(params string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo("qemu-img") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            return output;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "qemu-img not found";
        }
    }
}
