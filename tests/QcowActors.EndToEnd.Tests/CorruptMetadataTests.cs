using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Images whose metadata lies (made by qemu-img, then damaged with <see cref="QcowPatcher"/>): a write
/// that would land on metadata — a cluster whose refcount says free but that holds the header, a table or a
/// refcount block, or an L2 entry with COPIED pointing at metadata — must be refused like QEMU's
/// overlap-check=cached does: 422 problem+json saying the image is corrupt and naming what overlapped, the
/// corrupt bit (incompatible bit 1) set, no metadata byte changed, earlier acknowledged data intact, reads
/// still served, other images unaffected, the image closed so `qemu-img check -r all` can repair it, and
/// writes working again after the repair. Refcounts past the end of the file are only a leak.
/// </summary>
public sealed class CorruptMetadataTests(ITestOutputHelper output) : IDisposable
{
    private const int KiB = 1024;
    private const int MiB = 1024 * KiB;
    private const int ClusterSize = 64 * KiB;
    private const long DiskSize = 1L << 30;
    private const string Bad = "bad";
    private const string Good = "good";

    /// <summary>Idle images are closed after this long (phase 2): a read-only reopen is released by then.</summary>
    private static readonly TimeSpan PassivateAfter = TimeSpan.FromSeconds(8);

    /// <summary>How soon after the first refused write the server must have closed the image (less than <see cref="PassivateAfter"/>, so idling cannot explain it).</summary>
    private static readonly TimeSpan CloseAfterCorruption = TimeSpan.FromSeconds(5);

    private readonly TempDirectory _store = new("e2e-corrupt-store");
    private readonly TempDirectory _scratch = new("e2e-corrupt");

    /// <summary>What qemu-io writes before anything else (the data every case must keep serving).</summary>
    private static readonly (long Offset, int Length, byte Fill)[] QemuData = [(1 * MiB, 128 * KiB, 0x5a), (300L * MiB, 8 * KiB, 0xc3)];

    /// <summary>PUTs acknowledged while the image is healthy, before it is damaged (one of them into qemu's data).</summary>
    private static readonly (long Offset, int Length)[] AcknowledgedWrites = [(2 * MiB + 512, 4 * KiB), (3 * MiB, 64 * KiB), (1 * MiB + 8 * KiB, 4 * KiB)];

    /// <summary>
    /// PUTs after the damage, each needing a new cluster: 4 KiB at 0, a whole cluster, one in the second
    /// L2 table's range (a new L2 table too), an unaligned one.
    /// </summary>
    private static readonly (long Offset, int Length)[] WritesNeedingClusters = [(0, 4 * KiB), (7 * MiB, 64 * KiB), (600L * MiB, 4 * KiB), (9 * MiB + 100, 1000)];

    /// <summary>The virtual offset whose L2 entry the COPIED case points at the L1 table.</summary>
    private const long PatchedVirtualOffset = 8 * MiB;

    private sealed record Corruption(string Name, bool Snapshot, string[]? Overlaps, Func<QcowPatcher, string> Apply, long? WriteIntoPatchedCluster = null);

    private static Corruption Kind(string name) => name switch
    {
        "header-refcount-0" => new(name, false, ["header"], p => ZeroRefcount(p, 0, "header")),
        "l1-table-refcount-0" => new(name, false, ["L1 table"], p => ZeroRefcount(p, p.L1TableOffset, "active L1 table")),
        "refcount-block-refcount-0" => new(name, false, ["refcount block"], p => ZeroRefcount(p, p.RefcountBlockOffsetFor(0), "refcount block 0")),
        "l2-table-refcount-0" => new(name, false, ["L2 table"], p => ZeroRefcount(p, p.L2TableOffsetFor(0), "active L2 table 0")),
        "snapshot-l1-table-refcount-0" => new(name, true, ["snapshot", "inactive L1"], p => ZeroRefcount(p, p.Snapshots[0].L1TableOffset, $"L1 table of snapshot '{p.Snapshots[0].Name}'")),
        "snapshot-table-refcount-0" => new(name, true, ["snapshot"], p => ZeroRefcount(p, p.SnapshotsOffset, "snapshot table")),
        "copied-l2-entry-on-l1-table" => new(name, false, ["L1 table"], PointL2EntryAtL1, PatchedVirtualOffset),
        // Refcount block 0 "moved" 16 clusters past the end of the file: every count it would hold reads as 0.
        // Which structure a server finds overlapping first is its own business here: only "corrupt" is required.
        "refcount-block-past-eof" => new(name, false, null, MoveRefcountBlockPastEnd),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown corruption"),
    };

    [Theory]
    [InlineData("header-refcount-0")]
    [InlineData("l1-table-refcount-0")]
    [InlineData("refcount-block-refcount-0")]
    [InlineData("l2-table-refcount-0")]
    [InlineData("snapshot-l1-table-refcount-0")]
    [InlineData("snapshot-table-refcount-0")]
    [InlineData("copied-l2-entry-on-l1-table")]
    [InlineData("refcount-block-past-eof")]
    public async Task Write_landing_on_metadata_is_refused_with_422_marks_the_image_corrupt_keeps_reads_and_qemu_repair_restores_writes(string corruption)
    {
        var kind = Kind(corruption);
        var path = Path.Combine(_store.Path, Bad + ".qcow2");
        var rng = TestSeed.Create(output, 31337 + corruption.Length * 101 + corruption[0], corruption);

        // 1. The images, made by QEMU.
        Qemu.CreateQcow2(path, DiskSize, ClusterSize, null, "1.1");
        Qemu.IoCommands(path, QemuData.Select(d => $"write -P 0x{d.Fill:x2} {d.Offset} {d.Length}"));
        if (kind.Snapshot)
        {
            Qemu.Snapshot(path, "s1");
        }
        Qemu.CreateQcow2(Path.Combine(_store.Path, Good + ".qcow2"), 64L * MiB, ClusterSize, null, "1.1");

        // 2. Writes acknowledged while the image is healthy, then a graceful stop (closes the image cleanly).
        var acknowledged = AcknowledgedWrites.Select(w => (w.Offset, Data: RandomWorkload.Data(rng, w.Length))).ToList();
        await using (var first = await StartServerAsync())
        {
            foreach (var (offset, data) in acknowledged)
            {
                await first.Api.PutAsync(Bad, offset, data);
            }
            await StopGracefullyAsync(first);
        }
        Assert.False(File.Exists(Path.Combine(_store.Path, $".{Bad}.qcow2.open")), "the open marker is left after a graceful stop: the next open would recount the refcounts and undo the damage");
        DiskAssert.CheckIsClean(path);

        // 3. The damage, with nobody holding the image.
        string damage;
        using (var patcher = QcowPatcher.Open(path))
        {
            output.WriteLine($"before: {patcher}");
            damage = kind.Apply(patcher);
        }
        output.WriteLine($"damage: {damage}");
        var qemuView = ProcessRunner.Run(Qemu.QemuImg, ["check", "-f", "qcow2", path]);
        output.WriteLine($"qemu-img check of the damaged image: exit {qemuView.ExitCode}{Environment.NewLine}{qemuView.Stdout.Trim()}");
        var metadata = QcowMetadataSnapshot.Capture(path);
        output.WriteLine($"metadata clusters recorded: {string.Join(", ", metadata.Clusters)}");

        // QEMU's reading of the damaged disk is what every read must keep returning.
        using var model = ModelOf(path);
        foreach (var (offset, data) in acknowledged)
        {
            Assert.True(model.Describe(offset, data) is null, $"precondition: the acknowledged PUT at {offset} is not in the file: {model.Describe(offset, data)}");
        }

        // 4. The writes that would land on metadata.
        await using var server = await StartServerAsync(PassivateAfter);
        var writes = new List<(long Offset, byte[] Data)>();
        if (kind.WriteIntoPatchedCluster is { } patched)
        {
            writes.Add((patched, RandomWorkload.Data(rng, 4 * KiB)));
        }
        writes.AddRange(WritesNeedingClusters.Select(w => (w.Offset, RandomWorkload.Data(rng, w.Length))));

        var outcomes = new List<PutOutcome>();
        TimeSpan? closedAfter = null;
        foreach (var (offset, data) in writes)
        {
            var outcome = await PutRawAsync(server, Bad, offset, data);
            outcomes.Add(outcome);
            output.WriteLine(outcome.ToString());
            if (outcome.Status == 422 && outcomes.Count(o => o.Status == 422) == 1)
            {
                closedAfter = await WaitUntilNoOneHoldsAsync(path, CloseAfterCorruption);
                output.WriteLine(closedAfter is { } t
                    ? $"the server released the image {t.TotalMilliseconds:F0} ms after the first 422"
                    : $"the server still held the image {CloseAfterCorruption.TotalSeconds} s after the first 422");
            }
        }
        var changed = metadata.ChangedClusters();
        var incompatible = IncompatibleFeatures(path);
        output.WriteLine($"metadata clusters changed: {(changed.Count == 0 ? "none" : string.Join("; ", changed))}");
        output.WriteLine($"incompatible_features now {(incompatible is { } bits ? $"0x{bits:x}" : "unreadable (no qcow2 header any more)")}");

        var summary = $"{string.Join(Environment.NewLine, outcomes)}{Environment.NewLine}metadata changed: {(changed.Count == 0 ? "none" : string.Join("; ", changed))}";
        Assert.True(outcomes.All(o => o.IsCorruptProblem),
            $"every PUT must answer 422 application/problem+json with a detail saying the image is corrupt ({damage}):{Environment.NewLine}{summary}");
        if (kind.Overlaps is { } names)
        {
            var detail = outcomes[0].Detail ?? "";
            Assert.True(names.Any(n => detail.Contains(n, StringComparison.OrdinalIgnoreCase)),
                $"the first refusal must name what the write overlapped (one of: {string.Join(", ", names)}); detail: {detail}");
        }
        Assert.True(changed.Count == 0, $"metadata changed although every write was refused:{Environment.NewLine}{string.Join(Environment.NewLine, changed)}");
        Assert.True(incompatible is { } features && (features & QcowPatcher.IncompatibleCorrupt) != 0, $"the corrupt bit (incompatible bit 1) is not set: incompatible_features 0x{incompatible:x}");
        Assert.True(closedAfter is not null, $"the server did not close the image within {CloseAfterCorruption.TotalSeconds} s of the first 422 (qemu-img check -r all needs it closed). Output:{Environment.NewLine}{server.Output}");

        // 5. Reads still work: QEMU's data, the acknowledged PUTs, and the refused ranges unchanged.
        var interesting = QemuData.Select(d => (d.Offset, d.Length))
            .Concat(acknowledged.Select(a => (a.Offset, a.Data.Length)))
            .Concat(writes.Select(w => (w.Offset, w.Data.Length)))
            .ToList();
        await AssertServedAsync(server, interesting, model, "while the image is marked corrupt");

        // 6. Another image of the store is unaffected.
        var healthy = RandomWorkload.Data(rng, 4 * KiB);
        await server.Api.PutAsync(Good, 5 * MiB + 123, healthy);
        Assert.Equal(healthy, await server.Api.GetRangeAsync(Good, 5 * MiB + 123, healthy.Length));

        // 7. QEMU repairs the closed image; then it checks clean, reads as before, and takes writes again.
        var idle = await WaitUntilNoOneHoldsAsync(path, PassivateAfter + TimeSpan.FromSeconds(10));
        Assert.True(idle is not null, $"the server still holds {path} open {PassivateAfter.TotalSeconds + 10} s after the last request");
        var repair = RepairWithQemu(path);
        output.WriteLine($"{repair}");
        Assert.True(repair.ExitCode == 0, $"qemu-img check -r all did not repair the image: {repair}");
        DiskAssert.CheckIsClean(path);
        output.WriteLine($"after the repair: incompatible_features 0x{QcowPatcher.ReadIncompatibleFeatures(path):x}");
        await AssertServedAsync(server, interesting, model, "after the repair");

        var again = RandomWorkload.Data(rng, 4 * KiB);
        await server.Api.PutAsync(Bad, 0, again);
        model.Write(0, again);
        Assert.True(model.Describe(0, await server.Api.GetRangeAsync(Bad, 0, again.Length)) is null, "the PUT after the repair does not read back");
        DiskAssert.CheckIsClean(path);
        DiskAssert.FileMatchesModel(path, model, _scratch);
    }

    [Theory]
    [InlineData("l2-reserved-bit-1", 0x2UL)]
    [InlineData("l2-reserved-bit-60", 1UL << 60)]
    public async Task An_L2_entry_with_reserved_bits_reads_as_422_corrupt_and_its_neighbours_still_read(string corruption, ulong bit)
    {
        var path = Path.Combine(_store.Path, $"{corruption}.qcow2");
        Qemu.CreateQcow2(path, DiskSize, ClusterSize, null, "1.1");
        Qemu.Io(path, "-c", $"write -P 0x3d 0 {128 * KiB}");
        using (var patcher = QcowPatcher.Open(path))
            patcher.SetL2Entry(0, patcher.GetL2Entry(0) | bit);
        await using var server = await StartServerAsync();
        using var get = new HttpRequestMessage(HttpMethod.Get, server.DataUrl(corruption));
        get.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(0, 4095);
        using var refused = await server.Client.SendAsync(get);
        string problem = await refused.Content.ReadAsStringAsync();
        Assert.True(refused.StatusCode == System.Net.HttpStatusCode.UnprocessableEntity, problem);
        Assert.Contains("reserved bits", problem);
        Assert.All(await server.Api.GetRangeAsync(corruption, 64 * KiB, 4096), b => Assert.Equal(0x3d, b));
    }

    [Theory]
    [InlineData("refcount-entry-bit-63", 0x8000_0000_0000_0000UL)]
    [InlineData("refcount-entry-reserved-bits", 0x0000_0000_0000_0100UL)]
    public async Task A_refcount_table_entry_beyond_2_56_is_corrupt_metadata_reads_go_on_and_the_write_is_422(string corruption, ulong bits)
    {
        var path = Path.Combine(_store.Path, $"{corruption}.qcow2");
        Qemu.CreateQcow2(path, DiskSize, ClusterSize, null, "1.1");
        Qemu.Io(path, "-c", $"write -P 0x3c 0 {64 * KiB}");
        using (var patcher = QcowPatcher.Open(path))
            patcher.SetRefcountTableEntry(0, patcher.GetRefcountTableEntry(0) | bits);
        Qemu.CreateQcow2(Path.Combine(_store.Path, "healthy.qcow2"), DiskSize, ClusterSize, null, "1.1");
        await using var server = await StartServerAsync();
        Assert.All(await server.Api.GetRangeAsync(corruption, 0, 4096), b => Assert.Equal(0x3c, b));
        using var put = new HttpRequestMessage(HttpMethod.Put, server.DataUrl(corruption)) { Content = new ByteArrayContent(new byte[4096]) };
        put.Content.Headers.ContentRange = new System.Net.Http.Headers.ContentRangeHeaderValue(8 * MiB, 8 * MiB + 4095);
        using var refused = await server.Client.SendAsync(put);
        string problem = await refused.Content.ReadAsStringAsync();
        Assert.True(refused.StatusCode == System.Net.HttpStatusCode.UnprocessableEntity, problem);
        Assert.Contains("refcount table entry 0", problem);
        // The other images of the server are untouched by it.
        await server.Api.PutAsync("healthy", 0, new byte[] { 1, 2 });
        Assert.Equal([1, 2], await server.Api.GetRangeAsync("healthy", 0, 2));
    }

    [Fact]
    public async Task Refcounts_past_the_end_of_the_file_are_only_a_leak_puts_succeed_and_the_file_grows_by_the_clusters_they_need()
    {
        var path = Path.Combine(_store.Path, "leaky.qcow2");
        Qemu.CreateQcow2(path, DiskSize, ClusterSize, null, "1.1");
        Qemu.Io(path, "-c", $"write -P 0x5a {1 * MiB} {128 * KiB}");
        var writes = new (long Offset, int Length)[] { (0, 4 * KiB), (7 * MiB, 64 * KiB), (9 * MiB + 100, 1000), (20 * MiB + 4 * KiB, 4 * KiB), (40 * MiB, 128 * KiB), (600L * MiB, 4 * KiB) };

        long lengthBefore;
        int clustersNeeded;
        using (var patcher = QcowPatcher.Open(path))
        {
            lengthBefore = patcher.FileLength;
            var end = patcher.FileClusters;
            // Counts of 1 for the 40 clusters right after the end of the file, and for one far beyond.
            var leaked = Enumerable.Range(0, 40).Select(i => end + i).Append(end + 1000).ToList();
            Assert.True(leaked[^1] < patcher.RefcountBlockEntries, "precondition: refcount block 0 covers the leaked clusters");
            foreach (var cluster in leaked)
            {
                patcher.SetRefcount(cluster, 1);
            }
            clustersNeeded = ClustersNeeded(patcher, writes);
            output.WriteLine($"{patcher}");
            output.WriteLine($"refcount 1 set for clusters {end}..{end + 39} and {end + 1000} (the file has {end} clusters); the PUTs need {clustersNeeded} new clusters");
        }
        var qemuView = Qemu.Check(path);
        output.WriteLine($"qemu-img check of the leaky image: {qemuView}");

        using var model = ModelOf(path);
        var rng = TestSeed.Create(output, 4711, "leak");
        await using (var server = await StartServerAsync())
        {
            foreach (var (offset, length) in writes)
            {
                var data = RandomWorkload.Data(rng, length);
                await server.Api.PutAsync("leaky", offset, data); // throws with the problem body unless 200
                model.Write(offset, data);
                var back = await server.Api.GetRangeAsync("leaky", offset, length);
                Assert.True(model.Describe(offset, back) is null, $"PUT at {offset} does not read back: {model.Describe(offset, back)}");
            }
            await StopGracefullyAsync(server);
        }

        var lengthAfter = new FileInfo(path).Length;
        var roundedBefore = (lengthBefore + ClusterSize - 1) / ClusterSize * ClusterSize;
        var bound = roundedBefore + (long)clustersNeeded * ClusterSize;
        output.WriteLine($"file length {lengthBefore} -> {lengthAfter} bytes: {(lengthAfter - roundedBefore) / (double)ClusterSize:F2} clusters past the rounded-up old end; bound {bound} ({clustersNeeded} clusters)");
        Assert.True(lengthAfter <= bound,
            $"the file grew from {lengthBefore} to {lengthAfter} bytes, more than the {clustersNeeded} clusters the writes need (bound {bound}): allocation skipped past the leaked counts beyond the end of the file");

        var repair = RepairWithQemu(path);
        output.WriteLine($"{repair}");
        Assert.True(repair.ExitCode == 0, $"qemu-img check -r all left problems: {repair}");
        DiskAssert.CheckIsClean(path);
        DiskAssert.FileMatchesModel(path, model, _scratch);
    }

    public void Dispose()
    {
        _scratch.Dispose();
        _store.Dispose();
    }

    // ---- the corruptions ------------------------------------------------------------------

    private static string ZeroRefcount(QcowPatcher patcher, long hostOffset, string what)
    {
        Assert.True(hostOffset % patcher.ClusterSize == 0 && hostOffset >= 0, $"precondition: {what} at 0x{hostOffset:x} is a cluster");
        var cluster = patcher.ClusterOf(hostOffset);
        var old = patcher.GetRefcount(cluster);
        Assert.True(old >= 1, $"precondition: {what} (cluster {cluster}) has refcount {old}");
        patcher.SetRefcount(cluster, 0);
        Assert.Equal(0UL, patcher.GetRefcount(cluster));
        return $"refcount of cluster {cluster} ({what} at 0x{hostOffset:x}) {old} -> 0";
    }

    private static string PointL2EntryAtL1(QcowPatcher patcher)
    {
        var old = patcher.GetL2Entry(PatchedVirtualOffset);
        Assert.True(old == 0 && patcher.L2TableOffsetFor(PatchedVirtualOffset) != 0, $"precondition: virtual offset {PatchedVirtualOffset} is unallocated in an existing L2 table (entry 0x{old:x})");
        Assert.True(patcher.L1TableOffset % patcher.ClusterSize == 0, "precondition: the L1 table starts a cluster");
        var raw = (ulong)patcher.L1TableOffset | QcowPatcher.CopiedFlag;
        patcher.SetL2Entry(PatchedVirtualOffset, raw);
        return $"L2 entry of virtual offset {PatchedVirtualOffset} (cluster {PatchedVirtualOffset / patcher.ClusterSize}) 0x{old:x} -> 0x{raw:x}: COPIED, on the active L1 table's cluster";
    }

    private static string MoveRefcountBlockPastEnd(QcowPatcher patcher)
    {
        var old = patcher.GetRefcountTableEntry(0);
        var target = patcher.RoundUpToCluster(patcher.FileLength) + 16L * patcher.ClusterSize;
        patcher.SetRefcountTableEntry(0, (ulong)target);
        return $"refcount table entry 0 0x{old:x} -> 0x{target:x} ({patcher.FileLength} bytes of file): refcount block 0 past the end of the file";
    }

    /// <summary>New clusters the writes need: unallocated virtual clusters they touch, and L2 tables for ranges that have none.</summary>
    private static int ClustersNeeded(QcowPatcher patcher, IEnumerable<(long Offset, int Length)> writes)
    {
        var data = new HashSet<long>();
        var tables = new HashSet<long>();
        foreach (var (offset, length) in writes)
        {
            for (var cluster = offset / patcher.ClusterSize; cluster <= (offset + length - 1) / patcher.ClusterSize; cluster++)
            {
                var virtualOffset = cluster * patcher.ClusterSize;
                if (patcher.L2TableOffsetFor(virtualOffset) == 0)
                {
                    tables.Add(cluster / patcher.L2Entries);
                }
                if ((patcher.GetL2Entry(virtualOffset) & QcowPatcher.OffsetMask) == 0)
                {
                    data.Add(cluster);
                }
            }
        }
        return data.Count + tables.Count;
    }

    // ---- helpers ---------------------------------------------------------------------------

    private Task<ServerProcess> StartServerAsync(TimeSpan? passivateAfter = null)
    {
        var environment = new Dictionary<string, string>();
        if (passivateAfter is { } p)
        {
            environment["Storage__PassivateAfter"] = p.ToString("c", System.Globalization.CultureInfo.InvariantCulture);
        }
        return ServerProcess.StartAsync(new ServerOptions { StoreDirectory = _store.Path, Environment = environment });
    }

    private async Task StopGracefullyAsync(ServerProcess server)
    {
        var exitCode = await server.StopAsync();
        Assert.True(exitCode is 0 or 143, $"exit code {exitCode} after SIGTERM. Output:{Environment.NewLine}{server.Output}");
    }

    /// <summary>The header's incompatible_features, or null when the file no longer starts with a qcow2 header.</summary>
    private static ulong? IncompatibleFeatures(string path)
    {
        try
        {
            return QcowPatcher.ReadIncompatibleFeatures(path);
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }

    /// <summary>The disk as QEMU reads it now (qemu-img convert to raw).</summary>
    private DiskModel ModelOf(string path)
    {
        var raw = _scratch.File($"{Path.GetFileNameWithoutExtension(path)}-{Guid.NewGuid():N}.raw");
        Qemu.ConvertToRaw(path, raw);
        try
        {
            return DiskModel.FromRawFile(raw, _scratch.Path);
        }
        finally
        {
            File.Delete(raw);
        }
    }

    private static async Task AssertServedAsync(ServerProcess server, IEnumerable<(long Offset, int Length)> ranges, DiskModel model, string when)
    {
        foreach (var (offset, length) in ranges)
        {
            var served = await server.Api.GetRangeAsync(Bad, offset, length);
            Assert.True(model.Describe(offset, served) is null, $"{when}: GET of {length} bytes at {offset} differs from QEMU's reading: {model.Describe(offset, served)}");
        }
    }

    private static async Task<PutOutcome> PutRawAsync(ServerProcess server, string name, long offset, byte[] data)
    {
        using var content = new ByteArrayContent(data);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.ContentRange = new ContentRangeHeaderValue(offset, offset + data.Length - 1);
        using var request = new HttpRequestMessage(HttpMethod.Put, server.DataUrl(name)) { Content = content };
        using var response = await server.Client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        string? detail = null;
        if (mediaType == "application/problem+json")
        {
            try
            {
                using var json = JsonDocument.Parse(body);
                if (json.RootElement.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String)
                {
                    detail = d.GetString();
                }
            }
            catch (JsonException)
            {
            }
        }
        return new PutOutcome(offset, data.Length, (int)response.StatusCode, mediaType, detail, body);
    }

    /// <summary>
    /// Polls until the image can be locked exclusively (flock, as the server locks it from open to close),
    /// i.e. no server holds it open; returns how long that took, or null after <paramref name="timeout"/>.
    /// </summary>
    private static async Task<TimeSpan?> WaitUntilNoOneHoldsAsync(string path, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var probe = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
                return clock.Elapsed;
            }
            catch (IOException) when (clock.Elapsed < timeout)
            {
                await Task.Delay(100);
            }
            catch (IOException)
            {
                return null;
            }
        }
    }

    /// <summary>qemu-img check -r all, retried for up to 10 s while it cannot take its lock.</summary>
    private static ProcessResult RepairWithQemu(string path)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var result = ProcessRunner.Run(Qemu.QemuImg, ["check", "-r", "all", "-f", "qcow2", path]);
            if (result.ExitCode == 0 || clock.Elapsed > TimeSpan.FromSeconds(10) || !result.Output.Contains("lock", StringComparison.OrdinalIgnoreCase))
            {
                return result;
            }
            Thread.Sleep(500);
        }
    }

    private sealed record PutOutcome(long Offset, int Length, int Status, string? MediaType, string? Detail, string Body)
    {
        public bool IsCorruptProblem =>
            Status == 422 && MediaType == "application/problem+json" && Detail is not null && Detail.Contains("corrupt", StringComparison.OrdinalIgnoreCase);

        public override string ToString()
            => $"PUT bytes {Offset}-{Offset + Length - 1}: {Status} {MediaType} {(Detail is not null ? $"detail: {Detail}" : Body.Length > 300 ? Body[..300] : Body)}";
    }
}
