using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using QcowActors.Api.Tests.Support;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Api.Tests.Http;

/// <summary>
/// A table of hostile requests, each sent byte for byte over its own connection, each with the
/// status it must get: huge, negative and reversed ranges, broken Content-Range, bodies that lie
/// about their length, names that try to leave the store, JSON built to break parsers, wrong
/// methods. Afterwards the server is still ready, no answer was a 5xx, and the images still hold
/// their data and pass qemu-img check.
/// </summary>
public sealed partial class HostileRequestTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int KiB = 1024;
    private const int MiB = 1024 * KiB;
    /// <summary>"vm": written only by the setup; every row aimed at it must be refused before it writes.</summary>
    private const long DiskSize = 64 * MiB;
    /// <summary>"scratch" (same size) takes the rows that write; "tiny" is small enough to overrun.</summary>
    private const long TinySize = 64 * KiB;

    /// <summary>Known data of "vm": (offset, length, seed).</summary>
    private static readonly (long Offset, int Length, int Seed)[] Known =
        [(0, MiB, 1), (32 * MiB, MiB, 2), (DiskSize - 64 * KiB, 64 * KiB, 3)];

    private ApiServer _server = null!;

    public async Task InitializeAsync()
    {
        _server = await ApiServer.StartWithEngineAsync();
        await CreateAsync("vm", DiskSize);
        await CreateAsync("scratch", DiskSize);
        await CreateAsync("tiny", TinySize);
        foreach (var (offset, length, seed) in Known)
        {
            var body = new ByteArrayContent(Bodies.Pattern(length, seed));
            body.Headers.ContentRange = new ContentRangeHeaderValue(offset, offset + length - 1);
            using HttpResponseMessage put = await _server.Client.PutAsync("/images/vm/data", body);
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private async Task CreateAsync(string name, long size)
    {
        using HttpResponseMessage created = await _server.Client.PostAsJsonAsync("/images", new { name, size });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
    }

    [Fact]
    public async Task Hostile_requests_get_their_status_and_a_problem_and_leave_the_server_and_images_intact()
    {
        IReadOnlyList<Row> rows = Rows();
        Assert.True(rows.Count >= 80, $"only {rows.Count} rows");
        Assert.Equal(rows.Count, rows.Select(r => r.Name).Distinct().Count());

        var failures = new List<string>();
        foreach (Row row in rows)
        {
            string answer = await RawHttp.SendBytesAsync(_server.BaseAddress, row.Request, row.End);
            if (Verdict(row, answer) is { } failure)
                failures.Add($"{row.Name}: {failure}");
        }
        output.WriteLine($"{rows.Count} rows, {failures.Count} failed");
        Assert.True(failures.Count == 0, $"{failures.Count} of {rows.Count} rows failed:\n{string.Join("\n", failures)}");

        // The server's own record: no request ended in a 5xx, including any whose answer never arrived.
        CompletedRequest[] errors = [.. _server.Requests.All.Where(r => r.Status >= 500)];
        Assert.True(errors.Length == 0, $"5xx: {string.Join(", ", errors)}");

        using (HttpResponseMessage ready = await _server.Client.GetAsync("/healthz/ready"))
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        foreach (var (offset, length, seed) in Known)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/images/vm/data");
            request.Headers.Range = new RangeHeaderValue(offset, offset + length - 1);
            using HttpResponseMessage read = await _server.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.PartialContent, read.StatusCode);
            byte[] data = await read.Content.ReadAsByteArrayAsync();
            Assert.True(Bodies.Pattern(length, seed).AsSpan().SequenceEqual(data), $"vm lost its data at {offset}+{length}");
        }

        // Closed first, so that what the rows left unflushed on scratch is on disk before QEMU looks.
        foreach (string name in new[] { "vm", "scratch", "tiny" })
        {
            using (HttpResponseMessage closed = await _server.Client.PostAsync($"/images/{name}/close", null))
                Assert.Equal(HttpStatusCode.NoContent, closed.StatusCode);
            QemuCheckResult check = Qemu.Check(_server.ImagePath(name));
            Assert.True(check.IsClean, $"{name}: {check}");
        }
    }

    /// <summary>What the answer must be.</summary>
    private enum Expect
    {
        /// <summary>Our code answered: RFC 9457 problem+json with type, title, the status and a detail saying more than the title.</summary>
        Problem,
        /// <summary>
        /// Kestrel refused the request before any of our code ran (request line, header or framing
        /// errors): it answers the status with no body, and our exception handler never sees it.
        /// </summary>
        Kestrel,
        /// <summary>A success the contract promises for this input (Range ignored, JSON taken whatever its Content-Type).</summary>
        Success,
        /// <summary>
        /// The client sent FIN before the declared body was complete: Kestrel takes that for the end of
        /// the connection, so there may be no answer at all; if there is one it is a 400 problem, never a 2xx.
        /// </summary>
        Truncated,
    }

    /// <param name="Headers">Response headers that must have exactly these values.</param>
    private sealed record Row(string Name, byte[] Request, int Status, Expect Expect, RawEnd End = RawEnd.Read, (string Name, string Value)[]? Headers = null)
    {
        public override string ToString() => Name;
    }

    private static string? Verdict(Row row, string answer)
    {
        if (answer.Length == 0)
            return row.Expect == Expect.Truncated ? null : "no answer";
        if (!RawResponse.TryParse(answer, out RawResponse response))
            return $"unparseable answer: {Shorten(answer)}";
        // The one 5xx allowed: Kestrel's 505 for a request line in a version it does not speak, which is what it is.
        if (response.Status >= 500 && !(row.Expect == Expect.Kestrel && response.Status == 505))
            return $"5xx: {Shorten(answer)}";
        int expected = row.Expect == Expect.Truncated ? 400 : row.Status;
        if (response.Status != expected)
            return $"expected {expected}, got {response.Status}: {Shorten(answer)}";

        foreach (var (name, value) in row.Headers ?? [])
            if (response.Header(name) != value)
                return $"expected {name}: {value}, got {response.Header(name) ?? "(none)"}";
        // RFC 9110 §15.5.17 and §15.5.6: the size of the disk, the methods that would work.
        if (response.Status == 416 && response.Header("Content-Range")?.StartsWith("bytes */", StringComparison.Ordinal) != true)
            return $"416 without Content-Range bytes */SIZE: {Shorten(answer)}";
        if (response.Status == 405 && string.IsNullOrEmpty(response.Header("Allow")))
            return $"405 without Allow: {Shorten(answer)}";

        return row.Expect switch
        {
            Expect.Problem or Expect.Truncated => ProblemFault(response),
            Expect.Kestrel => null,
            _ => response.Header("Content-Type")?.StartsWith("application/problem+json") == true ? $"a success with a problem body: {Shorten(answer)}" : null,
        };
    }

    private static string? ProblemFault(RawResponse response)
    {
        if (response.Header("Content-Type")?.StartsWith("application/problem+json") != true)
            return $"Content-Type {response.Header("Content-Type") ?? "(none)"}, not application/problem+json: {Shorten(response.Body)}";
        try
        {
            using JsonDocument document = JsonDocument.Parse(response.Body);
            JsonElement problem = document.RootElement;
            if (!problem.TryGetProperty("status", out JsonElement status) || status.GetInt32() != response.Status)
                return $"problem status does not match: {Shorten(response.Body)}";
            string? type = problem.TryGetProperty("type", out JsonElement t) ? t.GetString() : null;
            string? title = problem.TryGetProperty("title", out JsonElement ti) ? ti.GetString() : null;
            string? detail = problem.TryGetProperty("detail", out JsonElement d) ? d.GetString() : null;
            if (string.IsNullOrEmpty(type) || string.IsNullOrEmpty(title))
                return $"problem without type or title: {Shorten(response.Body)}";
            if (string.IsNullOrWhiteSpace(detail) || detail == title)
                return $"problem without a detail beyond its title: {Shorten(response.Body)}";
            return null;
        }
        catch (JsonException e)
        {
            return $"problem body is not JSON ({e.Message}): {Shorten(response.Body)}";
        }
    }

    private static string Shorten(string text)
        => (text.Length > 600 ? text[..600] + "…" : text).Replace("\r\n", " | ");

    /// <summary>The first response of a connection, as RawHttp read it (one char per byte).</summary>
    private readonly record struct RawResponse(int Status, Dictionary<string, string> Headers, string Body)
    {
        public string? Header(string name) => Headers.TryGetValue(name, out string? value) ? value : null;

        public static bool TryParse(string answer, out RawResponse response)
        {
            response = default;
            int end = answer.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end < 0 || !answer.StartsWith("HTTP/1.1 ", StringComparison.Ordinal) || !int.TryParse(answer.AsSpan(9, 3), out int status))
                return false;
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (string line in answer[..end].Split("\r\n").Skip(1))
            {
                int colon = line.IndexOf(':');
                if (colon > 0)
                    headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
            }
            string body = answer[(end + 4)..];
            if (headers.TryGetValue("Transfer-Encoding", out string? coding) && coding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
                body = Dechunk(body);
            else if (headers.TryGetValue("Content-Length", out string? length) && int.TryParse(length, out int n) && n < body.Length)
                body = body[..n];
            response = new RawResponse(status, headers, body);
            return true;
        }

        private static string Dechunk(string chunked)
        {
            var body = new StringBuilder();
            int at = 0;
            while (at < chunked.Length)
            {
                int lineEnd = chunked.IndexOf("\r\n", at, StringComparison.Ordinal);
                if (lineEnd < 0 || !int.TryParse(chunked.AsSpan(at, lineEnd - at).TrimEnd(), System.Globalization.NumberStyles.HexNumber, null, out int size) || size == 0)
                    break;
                body.Append(chunked, lineEnd + 2, Math.Min(size, chunked.Length - lineEnd - 2));
                at = lineEnd + 2 + size + 2;
            }
            return body.ToString();
        }
    }
}
