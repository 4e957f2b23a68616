using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// The metadata budget is a bound on the server process, whatever the traffic: one-byte writes
/// into 2,000 distinct L2 tables of a 1 PiB image with 2 MiB clusters (each table is 2 MiB: 4 GiB
/// of tables if they were all held) keep the server within its idle size plus the budget plus a
/// fixed allowance; and requests for names that do not exist leave nothing behind.
/// </summary>
public sealed class MetadataBudgetTests(ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;
    private const long Budget = 64 * MiB;
    /// <summary>What the issue allows beside the budget: HTTP buffers of 16 clients, the GC's slack, the JIT.</summary>
    private const long Allowance = 48 * MiB;
    private const long TableCoverage = 512L * 1024 * 1024 * 1024; // 2 MiB clusters: 262,144 entries of 2 MiB each

    private static ServerOptions Options => new()
    {
        Environment = new Dictionary<string, string>
        {
            ["Storage__MetadataCacheBytesPerImage"] = Budget.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Storage__MetadataCacheBytesTotal"] = Budget.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Diagnostics__EngineState"] = "true",
        },
    };

    [Fact]
    public async Task Writes_into_2000_distinct_L2_tables_of_a_1_PiB_image_stay_within_the_idle_size_plus_the_budget_and_pass_qemu_check()
    {
        await using var server = await ServerProcess.StartAsync(Options);
        await server.Api.CreateAsync("huge", "1P", clusterSize: 2 * (int)MiB);
        Assert.Single(await server.Api.GetRangeAsync("huge", 0, 1)); // open, idle
        long idle = server.PeakRssBytes();

        const int tables = 2000;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var statuses = new System.Collections.Concurrent.ConcurrentBag<HttpStatusCode>();
        await Parallel.ForEachAsync(Enumerable.Range(0, tables), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (k, ct) =>
        {
            long offset = k * TableCoverage + k % 4096;
            using var put = new HttpRequestMessage(HttpMethod.Put, "images/huge/data?flush=n") { Content = new ByteArrayContent([(byte)(k % 251 + 1)]) };
            put.Content.Headers.ContentRange = new ContentRangeHeaderValue(offset, offset);
            using var response = await server.Client.SendAsync(put, ct);
            statuses.Add(response.StatusCode);
        });
        await server.Api.FlushAsync("huge");
        long peak = server.PeakRssBytes();
        output.WriteLine($"{tables} one-byte PUTs (16 clients) in {clock.Elapsed.TotalSeconds:F1} s; peak RSS {peak / MiB} MiB, "
                         + $"idle {idle / MiB} MiB, bound idle + {Budget / MiB} + {Allowance / MiB} = {(idle + Budget + Allowance) / MiB} MiB");
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        using (var state = JsonDocument.Parse(await server.Client.GetStringAsync("debug/engine")))
        {
            long held = state.RootElement.GetProperty("metadataCacheBytes").GetInt64();
            output.WriteLine($"metadata held after the flood: {held / MiB} MiB");
            Assert.InRange(held, 1, Budget);
        }
        Assert.True(peak <= idle + Budget + Allowance, $"peak RSS {peak / MiB} MiB passed idle {idle / MiB} + {Budget / MiB} + {Allowance / MiB} MiB");

        foreach (int k in new[] { 0, 1, 999, tables - 1 })
        {
            long offset = k * TableCoverage + k % 4096;
            Assert.Equal((byte)(k % 251 + 1), (await server.Api.GetRangeAsync("huge", offset, 1))[0]);
        }
        Assert.Equal(0, await server.StopAsync());
        var check = Qemu.Check(server.ImagePath("huge"));
        Assert.True(check.IsClean, check.ToString());
    }

    [Fact]
    public async Task Twenty_thousand_requests_for_names_that_do_not_exist_leave_no_entity_lease_or_supervisor_behind()
    {
        await using var server = await ServerProcess.StartAsync(Options);
        await server.Api.CreateAsync("real", 1 << 20);
        Assert.Single(await server.Api.GetRangeAsync("real", 0, 1));
        var before = await EngineStateAsync(server);
        output.WriteLine($"before: {before}");

        var statuses = new System.Collections.Concurrent.ConcurrentDictionary<HttpStatusCode, int>();
        string[] paths = ["images/{0}/data", "images/{0}", "images/{0}/data/extents"];
        await Parallel.ForEachAsync(Enumerable.Range(0, 20_000), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (k, ct) =>
        {
            using var response = await server.Client.GetAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, paths[k % 3], $"missing-{k}"), ct);
            statuses.AddOrUpdate(response.StatusCode, 1, (_, n) => n + 1);
        });
        var after = await EngineStateAsync(server);
        output.WriteLine($"answers: {string.Join(", ", statuses.Select(s => $"{(int)s.Key} x {s.Value}"))}; after: {after}");
        Assert.Equal(20_000, statuses.GetValueOrDefault(HttpStatusCode.NotFound));
        Assert.Equal(before, after);
        Assert.Equal((1, 1, 1), after);
    }

    private static async Task<(int Entities, int Owned, int Open)> EngineStateAsync(ServerProcess server)
    {
        using var state = JsonDocument.Parse(await server.Client.GetStringAsync("debug/engine"));
        var root = state.RootElement;
        return (root.GetProperty("shardEntities").GetInt32(), root.GetProperty("ownedImages").GetInt32(), root.GetProperty("openImages").GetInt32());
    }
}
