using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using QcowActors.EndToEnd.Tests.Corpus;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// The corrupt-image corpus (Corpus/): every case is built from a qemu-img image at test time, copied
/// into one server's store and asked for its description, two ranges, its extents, a 4 KiB PUT and a
/// PATCH zero. No answer may be a 5xx (503 only when retryable and not about corruption), every 4xx is
/// problem+json with a detail, every answer comes within 1 s, and after each image the server is ready,
/// alive and still serves a good image byte for byte.
/// </summary>
[Collection(CorruptCorpusCollection.Name)]
public sealed class CorruptCorpusTests(CorruptCorpusServer fixture, ITestOutputHelper output) : IClassFixture<CorruptCorpusServer>, IDisposable
{
    private const int KiB = 1024;
    private const string Good = "corpus-good";
    private static readonly TimeSpan AnswerWithin = TimeSpan.FromSeconds(1);
    /// <summary>A request still unanswered after this is a hang (a failure, not a stuck test).</summary>
    private static readonly TimeSpan HangAfter = TimeSpan.FromSeconds(5);

    private readonly TempDirectory _scratch = new("e2e-corpus");
    private readonly HttpClient _client = new() { BaseAddress = new Uri(fixture.Server.BaseUrl + "/"), Timeout = Timeout.InfiniteTimeSpan };
    private readonly Dictionary<string, bool> _unavailable = [];
    private ServerProcess Server => fixture.Server;

    private sealed record Answer(string Case, string Request, int Status, TimeSpan Elapsed, string Detail, string? Violation);

    public void Dispose()
    {
        _client.Dispose();
        _scratch.Dispose();
    }

    [Fact]
    public void CorruptCorpus_manifest_matches_the_generator()
    {
        var path = Path.Combine(RepositoryLayout.Root, "tests", "QcowActors.EndToEnd.Tests", "Corpus", "corpus-manifest.tsv");
        var expected = Manifest();
        if (Environment.GetEnvironmentVariable("QCOWACTORS_UPDATE_CORPUS") == "1")
            File.WriteAllText(path, expected);
        Assert.True(File.Exists(path), $"{path} is missing: run with QCOWACTORS_UPDATE_CORPUS=1 to write it");
        Assert.True(File.ReadAllText(path) == expected, $"{path} differs from the generator: run with QCOWACTORS_UPDATE_CORPUS=1 and review the diff");
        Assert.True(CorpusGenerator.All.Count >= 300, $"the corpus has {CorpusGenerator.All.Count} cases, fewer than 300");
        var unknown = KnownFailures.Names.Where(n => CorpusGenerator.All.All(c => c.Name != n)).ToList();
        Assert.True(unknown.Count == 0, $"KnownFailures names cases that do not exist: {string.Join(", ", unknown)}");
    }

    private static string Manifest()
    {
        var sb = new StringBuilder("# name\tcategory\tsource\texpect\tdamage\tknown failure\n");
        foreach (var c in CorpusGenerator.All)
            sb.Append(c.ManifestLine).Append('\n');
        return sb.ToString();
    }

    [Fact]
    public async Task CorruptCorpus_no_image_gives_a_5xx_a_hang_or_a_crash_and_each_answer_comes_within_a_second()
    {
        var total = Stopwatch.StartNew();
        var sources = SourceImages.Build(_scratch.Path);
        File.Copy(Path.Combine(_scratch.Path, SourceImages.BaseFileName), Path.Combine(Server.StoreDirectory, SourceImages.BaseFileName));
        var goodData = Pattern(64 * KiB, 0x5e);
        await Server.Api.CreateAsync(Good, "64M");
        await Server.Api.PutAsync(Good, 0, goodData);
        output.WriteLine($"source images built in {total.Elapsed.TotalSeconds:F1} s");

        // QCOWACTORS_CORPUS_FILTER=text runs the cases whose name contains it; QCOWACTORS_CORPUS_DUMP=dir keeps their files there;
        // QCOWACTORS_CORPUS_VERBOSE=1 prints every answer.
        var filter = Environment.GetEnvironmentVariable("QCOWACTORS_CORPUS_FILTER");
        var dump = Environment.GetEnvironmentVariable("QCOWACTORS_CORPUS_DUMP");
        var verbose = Environment.GetEnvironmentVariable("QCOWACTORS_CORPUS_VERBOSE") == "1"; // every answer of every case
        var cases = CorpusGenerator.All.Where(c => filter is null || c.Name.Contains(filter, StringComparison.Ordinal)).ToList();
        var known = cases.Where(c => c.KnownFailure is not null).ToList();
        output.WriteLine($"{cases.Count} corpus cases ({string.Join(", ", cases.GroupBy(c => c.Category).Select(g => $"{g.Key} {g.Count()}"))})");
        output.WriteLine($"{known.Count} known-failing cases: their violations are printed, not asserted:");
        foreach (var c in known)
            output.WriteLine($"  KNOWN {c.Name}: {c.KnownFailure}");

        var answers = new List<Answer>();
        var problems = new List<string>();
        foreach (var c in cases)
        {
            if (Server.HasExited)
            {
                problems.Add($"{c.Name}: not run, the server exited with {Server.ExitCode}");
                continue;
            }
            var built = c.Build(sources);
            if (dump is not null)
                DumpCase(dump, built);
            var caseAnswers = await RunCaseAsync(built, goodData);
            answers.AddRange(caseAnswers);
            if (verbose)
                foreach (var a in caseAnswers)
                    output.WriteLine($"  {a.Case} {a.Request} → {a.Status} {a.Elapsed.TotalMilliseconds:F0} ms {a.Detail}");
            foreach (var a in caseAnswers.Where(a => a.Violation is not null))
                problems.Add($"{c.Name}{(c.KnownFailure is null ? "" : " [known]")}: {a.Request} → {a.Status} in {a.Elapsed.TotalMilliseconds:F0} ms: {a.Violation} ({a.Detail})");
        }

        var knownNames = known.Select(k => k.Name).ToHashSet();
        var failedCases = answers.Where(a => a.Violation is not null).Select(a => a.Case).ToHashSet();
        output.WriteLine("");
        output.WriteLine($"corpus: {cases.Count} images, {answers.Count} requests in {total.Elapsed.TotalSeconds:F1} s");
        output.WriteLine("statuses: " + string.Join(", ", answers.GroupBy(a => a.Status).OrderBy(g => g.Key).Select(g => $"{(g.Key == 0 ? "none" : g.Key.ToString())} ×{g.Count()}")));
        foreach (var slow in answers.OrderByDescending(a => a.Elapsed).Take(5))
            output.WriteLine($"slow: {slow.Elapsed.TotalMilliseconds:F0} ms {slow.Case} {slow.Request} → {slow.Status}");
        foreach (var a in answers.Where(a => a.Status is 503 or 409 or 400))
            output.WriteLine($"{a.Status}: {a.Case} {a.Request}: {a.Detail}");
        foreach (var e in new[] { Expect.Refuse, Expect.Serve })
        {
            // Refused = GET info or the first read answers 4xx (a refused backing file is still described).
            bool Refused(string n) => answers.Any(a => a.Case == n && a.Request is "GET info" or "GET 0-64K" && a.Status is >= 400 and < 500);
            var mismatched = cases.Where(c => c.Expect == e && (e == Expect.Refuse) != Refused(c.Name)).Select(c => c.Name).ToList();
            output.WriteLine($"expected {e}, observed otherwise (informational, not asserted): {mismatched.Count} {string.Join(" ", mismatched)}");
        }
        foreach (var n in knownNames.Where(n => !failedCases.Contains(n)))
            output.WriteLine($"KNOWN FAILURE NOW PASSES (remove it from KnownFailures): {n}");
        foreach (var p in problems)
            output.WriteLine(p);

        var unexpected = problems.Where(p => !p.Contains(" [known]: ", StringComparison.Ordinal)).ToList();
        Assert.False(Server.HasExited, $"the server exited ({Server.ExitCode}):\n{Server.Output[^Math.Min(8000, Server.Output.Length)..]}");
        Assert.True(unexpected.Count == 0, $"{unexpected.Count} violations on {failedCases.Count(n => !knownNames.Contains(n))} cases:\n{string.Join("\n", unexpected.Take(200))}");
    }

    private async Task<List<Answer>> RunCaseAsync(BuiltCase built, byte[] goodData)
    {
        var name = built.Case.Name;
        var store = Server.StoreDirectory;
        foreach (var (file, bytes) in built.ExtraFiles)
            await File.WriteAllBytesAsync(Path.Combine(store, file), bytes);
        await File.WriteAllBytesAsync(Path.Combine(store, name + ".qcow2"), built.Image);

        var answers = new List<Answer>();
        var info = await AskAsync(name, "GET info", () => new HttpRequestMessage(HttpMethod.Get, $"images/{name}"));
        answers.Add(info.Answer);
        var size = SourceImages.DiskSize;
        if (info.Answer.Status == 200 && info.Body is { } body)
        {
            try
            {
                using var doc = JsonDocument.Parse(body);
                if (doc.RootElement.TryGetProperty("virtualSize", out var vs) && vs.TryGetInt64(out var v) && v > 0)
                    size = v;
            }
            catch (JsonException)
            {
                answers.Add(info.Answer with { Request = "GET info body", Violation = "200 with a body that is not JSON" });
            }
        }
        var mid = size / 2 / 4096 * 4096;
        answers.Add((await AskAsync(name, "GET 0-64K", () => Ranged($"images/{name}/data", 0, 64 * KiB))).Answer);
        answers.Add((await AskAsync(name, $"GET mid {mid}+4K", () => Ranged($"images/{name}/data", mid, 4 * KiB))).Answer);
        answers.Add((await AskAsync(name, "GET extents", () => new HttpRequestMessage(HttpMethod.Get, $"images/{name}/data/extents?context=zero"))).Answer);
        // Beyond the six: the store listing (it reads every header) and the snapshots, before anything writes.
        answers.Add((await AskAsync(name, "GET /images", () => new HttpRequestMessage(HttpMethod.Get, "images"))).Answer);
        var snapshots = await AskAsync(name, "GET snapshots", () => new HttpRequestMessage(HttpMethod.Get, $"images/{name}/snapshots"));
        answers.Add(snapshots.Answer);
        foreach (var id in SnapshotIds(snapshots).Take(2))
        {
            var escaped = Uri.EscapeDataString(id);
            answers.Add((await AskAsync(name, $"GET snapshot {id} 0-64K", () => Ranged($"images/{name}/snapshots/{escaped}/data", 0, 64 * KiB))).Answer);
            answers.Add((await AskAsync(name, $"GET snapshot {id} extents", () => new HttpRequestMessage(HttpMethod.Get, $"images/{name}/snapshots/{escaped}/data/extents"))).Answer);
        }
        answers.Add((await AskAsync(name, "PUT 0+4K", () =>
        {
            var r = new HttpRequestMessage(HttpMethod.Put, $"images/{name}/data") { Content = new ByteArrayContent(Pattern(4 * KiB, 0xc7)) };
            r.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            r.Content.Headers.ContentRange = new ContentRangeHeaderValue(0, 4 * KiB - 1);
            return r;
        })).Answer);
        answers.Add((await AskAsync(name, "PATCH zero 1M+64K", () => new HttpRequestMessage(HttpMethod.Patch, $"images/{name}/data")
        {
            Content = new StringContent("{\"op\":\"zero\",\"offset\":1048576,\"size\":65536,\"flush\":true}", Encoding.UTF8, "application/json"),
        })).Answer);

        // Snapshot writes walk every table the image reaches (take one: counts up; delete the first: counts down).
        // Closed first, so they always start from the file (a write above may have left the image closing as corrupt).
        answers.Add((await AskAsync(name, "POST close", () => new HttpRequestMessage(HttpMethod.Post, $"images/{name}/close"))).Answer);
        answers.Add((await AskAsync(name, "POST snapshot", () => new HttpRequestMessage(HttpMethod.Post, $"images/{name}/snapshots")
        {
            Content = new StringContent("{\"name\":\"corpus\"}", Encoding.UTF8, "application/json"),
        })).Answer);
        foreach (var id in SnapshotIds(snapshots).Take(1))
        {
            var escaped = Uri.EscapeDataString(id);
            answers.Add((await AskAsync(name, $"DELETE snapshot {id}", () => new HttpRequestMessage(HttpMethod.Delete, $"images/{name}/snapshots/{escaped}"))).Answer);
        }
        foreach (var id in SnapshotIds(snapshots).Skip(1).Take(1))
        {
            var escaped = Uri.EscapeDataString(id);
            answers.Add((await AskAsync(name, $"POST revert {id}", () => new HttpRequestMessage(HttpMethod.Post, $"images/{name}/snapshots/{escaped}/revert"))).Answer);
        }
        // A resize rewrites the L1 table and the refcounts (grow by 1 MiB).
        answers.Add((await AskAsync(name, "PATCH resize +1M", () => new HttpRequestMessage(HttpMethod.Patch, $"images/{name}")
        {
            Content = new StringContent($"{{\"size\":{(size + (1 << 20) + 511) / 512 * 512}}}", Encoding.UTF8, "application/json"),
        })).Answer);

        // The server as a whole: ready, alive, and the good image intact.
        var ready = await AskAsync(name, "healthz/ready", () => new HttpRequestMessage(HttpMethod.Get, "healthz/ready"));
        answers.Add(ready.Answer.Status == 200 ? ready.Answer : ready.Answer with { Violation = ready.Answer.Violation ?? "readiness is not 200 after the image" });
        var good = await AskAsync(name, "GET good 0-64K", () => Ranged($"images/{Good}/data", 0, 64 * KiB), bytes: true);
        answers.Add(good.Answer.Status == 206 && good.Bytes is { } g && g.AsSpan().SequenceEqual(goodData)
            ? good.Answer
            : good.Answer with { Violation = good.Answer.Violation ?? "the good image no longer reads back as written" });
        if (Server.HasExited)
            answers.Add(new Answer(name, "server alive", 0, TimeSpan.Zero, $"exit code {Server.ExitCode}", "the server process exited"));

        // Clean up: DELETE (the image first, then a backing file it named), then whatever is left by hand.
        answers.Add((await AskAsync(name, "DELETE", () => new HttpRequestMessage(HttpMethod.Delete, $"images/{name}"))).Answer);
        foreach (var (file, _) in built.ExtraFiles)
        {
            var extra = Path.GetFileNameWithoutExtension(file);
            answers.Add((await AskAsync(name, $"DELETE {extra}", () => new HttpRequestMessage(HttpMethod.Delete, $"images/{extra}"))).Answer);
        }
        foreach (var file in built.ExtraFiles.Select(e => e.FileName).Prepend(name + ".qcow2"))
        {
            var path = Path.Combine(store, file);
            if (File.Exists(path))
            {
                using (await _client.PostAsync($"images/{Path.GetFileNameWithoutExtension(file)}/close", null)) { }
                File.Delete(path);
            }
        }
        return answers;
    }

    private static void DumpCase(string directory, BuiltCase built)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllBytes(Path.Combine(directory, built.Case.Name + ".qcow2"), built.Image);
        foreach (var (file, bytes) in built.ExtraFiles)
            File.WriteAllBytes(Path.Combine(directory, file), bytes);
    }

    private static IEnumerable<string> SnapshotIds(Asked snapshots)
    {
        if (snapshots.Answer.Status != 200 || snapshots.Body is null)
            return [];
        try
        {
            using var doc = JsonDocument.Parse(snapshots.Body);
            var list = doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement
                : doc.RootElement.TryGetProperty("snapshots", out var inner) ? inner : default;
            return list.ValueKind != JsonValueKind.Array ? []
                : list.EnumerateArray().Select(e => e.TryGetProperty("id", out var id) ? id.GetString() : null)
                    .Where(id => !string.IsNullOrEmpty(id)).Select(id => id!).ToList();
        }
        catch (JsonException)
        {
            return [];
        }
    }

    private sealed record Asked(Answer Answer, string? Body, byte[]? Bytes);

    /// <summary>Sends one request with a hang timeout and judges the answer by the corpus rules.</summary>
    private async Task<Asked> AskAsync(string caseName, string what, Func<HttpRequestMessage> request, bool bytes = false)
    {
        using var cts = new CancellationTokenSource(HangAfter);
        var sw = Stopwatch.StartNew();
        HttpResponseMessage response;
        try
        {
            using var r = request();
            response = await _client.SendAsync(r, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or HttpRequestException)
        {
            return new(new Answer(caseName, what, 0, sw.Elapsed, e.Message, cts.IsCancellationRequested ? $"no answer within {HangAfter.TotalSeconds} s (a hang)" : $"no answer: {e.GetType().Name}"), null, null);
        }
        using (response)
        {
            var status = (int)response.StatusCode;
            byte[] body;
            try
            {
                body = await response.Content.ReadAsByteArrayAsync(cts.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or HttpRequestException or IOException)
            {
                var hang = cts.IsCancellationRequested;
                return new(new Answer(caseName, what, status, sw.Elapsed, e.Message, hang ? $"body not complete within {HangAfter.TotalSeconds} s (a hang)" : $"body cut after status {status}: {e.GetType().Name}"), null, null);
            }
            var elapsed = sw.Elapsed;
            var text = Encoding.UTF8.GetString(body);
            var detail = ProblemDetail(response, text);
            string? violation = null;
            if (status >= 500 && !(status == 503 && response.Headers.RetryAfter is not null && !detail.Contains("corrupt", StringComparison.OrdinalIgnoreCase)))
                violation = status == 503 ? "503 without Retry-After or about corruption" : $"server error {status}";
            else if (status == 503 && await StillUnavailableAsync(caseName, request, response.Headers.RetryAfter!))
                violation = "503 'try again', but the same request answers 503 again after Retry-After: nothing here can pass (one node, nothing moving, nothing else holding the image)";
            else if (status is >= 400 and < 500 && (response.Content.Headers.ContentType?.MediaType != "application/problem+json" || string.IsNullOrWhiteSpace(detail)))
                violation = $"{status} without a problem+json detail";
            else if (elapsed > AnswerWithin)
                violation = $"answered in {elapsed.TotalMilliseconds:F0} ms (over {AnswerWithin.TotalMilliseconds:F0} ms)";
            return new(new Answer(caseName, what, status, elapsed, detail.Length > 300 ? detail[..300] : detail, violation), text, bytes ? body : null);
        }
    }

    /// <summary>
    /// Whether a 503 is not retryable after all: the request is repeated once per case after its
    /// Retry-After (on one node with nothing moving or locked, a damaged file does not heal, so a
    /// second 503 means the server said "try again" for a permanent problem).
    /// </summary>
    private async Task<bool> StillUnavailableAsync(string caseName, Func<HttpRequestMessage> request, RetryConditionHeaderValue retryAfter)
    {
        if (_unavailable.TryGetValue(caseName, out var known))
            return known;
        await Task.Delay(retryAfter.Delta is { } d && d < TimeSpan.FromSeconds(2) ? d : TimeSpan.FromSeconds(1));
        using var cts = new CancellationTokenSource(HangAfter);
        bool again;
        try
        {
            using var r = request();
            using var response = await _client.SendAsync(r, cts.Token);
            again = response.StatusCode == HttpStatusCode.ServiceUnavailable;
        }
        catch (Exception e) when (e is OperationCanceledException or HttpRequestException)
        {
            again = true;
        }
        _unavailable[caseName] = again;
        return again;
    }

    private static string ProblemDetail(HttpResponseMessage response, string text)
    {
        if (response.Content.Headers.ContentType?.MediaType is not ("application/problem+json" or "application/json"))
            return "";
        try
        {
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() ?? "" : "";
        }
        catch (JsonException)
        {
            return "";
        }
    }

    private static HttpRequestMessage Ranged(string url, long offset, int length)
    {
        var r = new HttpRequestMessage(HttpMethod.Get, url);
        r.Headers.Range = new RangeHeaderValue(offset, offset + length - 1);
        return r;
    }

    private static byte[] Pattern(int length, byte seed)
    {
        var b = new byte[length];
        for (var i = 0; i < length; i++)
            b[i] = (byte)(seed + i * 31 + (i >> 9));
        return b;
    }
}

/// <summary>The corpus runs alone: its 1 s bound is about the server, not about the test classes beside it on 2 cores.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CorruptCorpusCollection
{
    public const string Name = "corrupt corpus";
}

/// <summary>
/// One server for the whole corpus, with small metadata budgets and few open images: an open that
/// fails and keeps its reservation or its slot shows up as 503s a few dozen cases later.
/// </summary>
public sealed class CorruptCorpusServer : ServerFixture
{
    protected override ServerOptions Options => new()
    {
        Environment = new Dictionary<string, string>
        {
            ["Storage__MetadataCacheBytesPerImage"] = (16 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Storage__MetadataCacheBytesTotal"] = (32 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Storage__MaxOpenImages"] = "8",
            ["Storage__MetadataCacheWaitLimit"] = "00:00:00.500",
        },
    };
}
