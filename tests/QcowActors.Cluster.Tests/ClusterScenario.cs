using System.Diagnostics;
using System.Globalization;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Cluster.Tests;

/// <summary>The steps the scenarios share, over one cluster and its images: load, victim choice, read-back, offline checks.</summary>
internal sealed class ClusterScenario(LoopbackCluster cluster, IReadOnlyList<ImageModel> images, ITestOutputHelper output, ClusterFixture fixture)
{
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(2);

    public LoopbackCluster Cluster => cluster;

    /// <summary>The qcow-writer lines of every process of every cluster of the run.</summary>
    public WriterLedger Ledger => fixture.Ledger;

    public string LogDirectory => fixture.LogDirectory;

    public IReadOnlyList<ImageModel> Images => images;

    public IReadOnlyList<string> ImageNames => images.Select(i => i.Name).ToList();

    public static ClusterBounds Bounds => ClusterBounds.Current;

    public void Log(string line) => output.WriteLine(line);

    /// <summary>Prints a figure and keeps it for the run's summary.</summary>
    public void Figure(string line)
    {
        output.WriteLine(line);
        fixture.AddFigure(line);
    }

    /// <summary>Starts the load on every running node and returns once every image has had a few acknowledged writes.</summary>
    public async Task<LoadClient> StartLoadAsync()
    {
        var load = new LoadClient(images, cluster.Running);
        load.Start();
        var names = ImageNames;
        var warmedUp = await load.WaitUntilAsync(a => Monotonic.Seconds(load.StartedNs, Monotonic.Now) >= WarmUp.TotalSeconds && LoadAnalysis.EachAcknowledged(a, names, 5), TimeSpan.FromSeconds(30));
        if (!warmedUp)
        {
            var attempts = load.Attempts;
            await load.DisposeAsync();
            Assert.Fail($"The load did not get 5 acknowledged writes per image within 30 s on a healthy cluster; last attempts:{Environment.NewLine}{string.Join(Environment.NewLine, attempts.TakeLast(20))}");
        }
        return load;
    }

    /// <summary>
    /// Waits, under the load, until the shard coordinator has stopped moving images to a node that
    /// (re)joined: it rebalances one shard per 10 s round from the node with the most shards, and an
    /// owner killed while one of its shards is being handed off strands that shard for the 60 s
    /// hand-off timeout (seen in the zombie scenario, which deliberately does not wait). Settled:
    /// no image changed owner for 3 s and the nodes' image counts differ by at most one; or the
    /// joined node owns an image and nothing moved for 11 s (a whole round); or nothing moved for
    /// 21 s. Returns the time it settled.
    /// </summary>
    public async Task<long> SettleAsync(LoadClient load, NodeProcess joined)
    {
        var start = Monotonic.Now;
        var timeout = Monotonic.Ns(TimeSpan.FromSeconds(60));
        var running = cluster.Running.Count;
        Dictionary<string, string>? last = null;
        var lastChange = load.StartedNs;
        while (true)
        {
            var now = Monotonic.Now;
            var owners = LoadAnalysis.OwnersAt(load.Attempts, now);
            if (last is null || owners.Count != last.Count || owners.Any(o => !last.TryGetValue(o.Key, out var v) || v != o.Value))
            {
                if (last is not null)
                {
                    lastChange = now;
                }
                last = owners;
            }
            var counts = owners.GroupBy(o => o.Value).Select(g => g.Count()).ToList();
            var spread = counts.Count < running ? counts.DefaultIfEmpty(0).Max() : counts.Max() - counts.Min();
            var stable = Monotonic.Seconds(lastChange, now);
            var joinedOwns = owners.ContainsValue(joined.Address);
            if ((spread <= 1 && stable >= 3) || (joinedOwns && stable >= 11) || stable >= 21 || now - start > timeout)
            {
                Figure($"ownership after node{joined.Index} rejoined: {(now - start > timeout ? "still moving" : "settled")} after {Seconds(Monotonic.Seconds(start, now))} " +
                       $"(unchanged for {Seconds(stable)}): {LoadAnalysis.Distribution(owners)}");
                return now;
            }
            await Task.Delay(200);
        }
    }

    /// <summary>The attempts on the image of <paramref name="pause"/> while it lasted, for the failure message.</summary>
    public static string DescribePause(IReadOnlyList<WriteAttempt> attempts, Pause pause)
        => $"attempts on {pause.Image} during the pause:{Environment.NewLine}  {List(LoadAnalysis.During(attempts, pause.Image, pause.FromNs + 1, pause.ToNs), 10)}";

    /// <summary>The running node that executed the latest writes of the most images, and those images.</summary>
    public (NodeProcess Victim, IReadOnlyList<string> Images) PickOwner(LoadClient load)
    {
        var owners = LoadAnalysis.OwnersAt(load.Attempts, Monotonic.Now);
        var best = owners.GroupBy(o => o.Value).OrderByDescending(g => g.Count()).ThenByDescending(g => g.Key, StringComparer.Ordinal).First();
        var victim = cluster.ByAddress(best.Key) ?? throw new InvalidOperationException($"no running node has address {best.Key}");
        Log($"owners: {string.Join(", ", owners.OrderBy(o => o.Key).Select(o => $"{o.Key}@{cluster.ByAddress(o.Value)?.Index.ToString(CultureInfo.InvariantCulture) ?? o.Value}"))}");
        return (victim, best.Select(o => o.Key).Order(StringComparer.Ordinal).ToList());
    }

    /// <summary>Reads every image's written region through each of <paramref name="nodes"/> and compares it with the acknowledged writes.</summary>
    public async Task<IReadOnlyList<string>> ReadBackAsync(IEnumerable<NodeProcess> nodes)
    {
        var problems = new List<string>();
        var watch = Stopwatch.StartNew();
        var nodeList = nodes.ToList();
        foreach (var node in nodeList)
        {
            foreach (var image in images)
            {
                try
                {
                    var bytes = await node.Server.Api.GetRangeAsync(image.Name, 0, image.RegionBytes);
                    if (image.Describe(bytes) is { } problem)
                    {
                        problems.Add($"through {node}: {problem}");
                    }
                }
                catch (Exception e) when (e is ApiStatusException or HttpRequestException or TaskCanceledException)
                {
                    problems.Add($"through {node}: reading {image.Name} failed: {e.Message}");
                }
            }
        }
        Log($"read-back of {images.Count} images x {images[0].RegionBytes / (1024 * 1024)} MiB through {string.Join(", ", nodeList.Select(n => $"node{n.Index}"))}: " +
            $"{(problems.Count == 0 ? "identical" : $"{problems.Count} problem(s)")} ({watch.Elapsed.TotalSeconds:F1} s; " +
            $"{images.Sum(i => i.Acknowledged)} acknowledged writes, {images.Sum(i => i.Abandoned)} abandoned)");
        return problems;
    }

    /// <summary>With the nodes stopped: qemu-img check of every image, and its content (qemu-img convert) against the acknowledged writes.</summary>
    public IReadOnlyList<string> CheckStoreOffline()
    {
        var problems = new List<string>();
        using var scratch = new TempDirectory("qcowactors-cluster-raw");
        foreach (var image in images)
        {
            var path = Path.Combine(cluster.StoreDirectory, image.Name + ".qcow2");
            var check = Qemu.Check(path);
            Log($"qemu-img check {image.Name}: exit {check.ExitCode}, corruptions {check.Corruptions}, leaks {check.Leaks}, check-errors {check.CheckErrors}");
            if (!check.IsClean || check.Corruptions != 0 || check.Leaks != 0 || check.CheckErrors != 0)
            {
                problems.Add($"{image.Name}: {check}");
            }
            var raw = scratch.File(image.Name + ".raw");
            Qemu.ConvertToRaw(path, raw);
            var bytes = File.ReadAllBytes(raw);
            if (bytes.LongLength != image.Size)
            {
                problems.Add($"{image.Name}: qemu-img convert gave {bytes.LongLength} bytes, expected {image.Size}");
                continue;
            }
            if (image.Describe(bytes.AsSpan(0, image.RegionBytes)) is { } problem)
            {
                problems.Add($"qemu-img convert of {problem}");
            }
            if (bytes.AsSpan(image.RegionBytes).IndexOfAnyExcept((byte)0) is >= 0 and var at)
            {
                problems.Add($"{image.Name}: non-zero byte at {image.RegionBytes + at}, past every write");
            }
            File.Delete(raw);
        }
        return problems;
    }

    /// <summary>Lines "Image NAME was not closed cleanly" (the repair on open) that any process of the cluster logged after <paramref name="fromNs"/>.</summary>
    public IReadOnlyList<string> RepairLines(string image, long fromNs)
        => cluster.Incarnations.SelectMany(n => n.Log.Matching($"Image {image} was not closed cleanly", fromNs).Select(l => $"node{n.Index} pid {n.Pid}: {l.Line.Trim()}")).ToList();

    /// <summary>How many "is held open by another process" conflicts the nodes other than <paramref name="except"/> logged after <paramref name="fromNs"/>.</summary>
    public int ConflictLines(NodeProcess except, long fromNs)
        => cluster.Incarnations.Where(n => n.Pid != except.Pid).Sum(n => n.Log.Matching("is held open by another process", fromNs).Count);

    /// <summary>Writes every attempt of the load to a CSV file next to the node logs.</summary>
    public void SaveAttempts(LoadClient load, string label)
    {
        var name = new string(label.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '-').ToArray()).Trim('-');
        var path = Path.Combine(fixture.LogDirectory, $"{cluster.Name}-{name}-attempts.csv");
        load.WriteCsv(path, cluster.Incarnations.Select(n => n.StartedNs).DefaultIfEmpty(load.StartedNs).Min());
        Log($"attempts: {path}");
    }

    public static string Seconds(double seconds) => seconds.ToString("F2", CultureInfo.InvariantCulture) + " s";

    public static string List(IEnumerable<WriteAttempt> attempts, int max = 15)
    {
        var list = attempts.ToList();
        var shown = string.Join(Environment.NewLine + "  ", list.Take(max));
        return list.Count > max ? $"{shown}{Environment.NewLine}  ... and {list.Count - max} more" : shown;
    }
}
