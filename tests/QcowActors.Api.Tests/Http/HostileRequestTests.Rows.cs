using System.Text;
using QcowActors.Api.Tests.Support;

namespace QcowActors.Api.Tests.Http;

/// <summary>The table. Statuses follow README "HTTP API in brief", openapi.yaml and RFC 9110.</summary>
public sealed partial class HostileRequestTests
{
    private const string Vm = "/images/vm/data";
    private const string Scratch = "/images/scratch/data";
    private static readonly (string, string) WholeDiskLength = ("Content-Length", $"{DiskSize}");
    private static readonly (string, string) DiskUnsatisfied = ("Content-Range", $"bytes */{DiskSize}");

    private static IReadOnlyList<Row> Rows()
    {
        var rows = new List<Row>();
        void Problem(string name, byte[] request, int status, params (string, string)[] headers)
            => rows.Add(new Row(name, request, status, Expect.Problem, Headers: headers));
        void Kestrel(string name, byte[] request, int status) => rows.Add(new Row(name, request, status, Expect.Kestrel));
        void Success(string name, byte[] request, int status, params (string, string)[] headers)
            => rows.Add(new Row(name, request, status, Expect.Success, Headers: headers));

        // Range (RFC 9110 §14.2): a first position at or past the end is 416 with bytes */SIZE; a last
        // position past the end is clamped; numbers beyond a long saturate; a Range that is not a valid
        // bytes ranges-specifier is ignored (200, whole disk; HEAD so the table does not read it).
        Problem("Range first 2^63-1", Get(Vm, "Range: bytes=9223372036854775807-"), 416, DiskUnsatisfied);
        Problem("Range first 2^63", Get(Vm, "Range: bytes=9223372036854775808-"), 416, DiskUnsatisfied);
        Problem("Range first 2^64", Get(Vm, "Range: bytes=18446744073709551616-18446744073709551617"), 416, DiskUnsatisfied);
        Problem("Range first at the end", Get(Vm, $"Range: bytes={DiskSize}-"), 416, DiskUnsatisfied);
        Problem("Range suffix 0", Get(Vm, "Range: bytes=-0"), 416, DiskUnsatisfied);
        Success("Range last 2^64-1 clamped", Head(Vm, "Range: bytes=0-18446744073709551615"), 206,
            ("Content-Range", $"bytes 0-{DiskSize - 1}/{DiskSize}"), WholeDiskLength);
        Success("Range last 2^64-1 near the end", Get(Vm, $"Range: bytes={DiskSize - 4}-18446744073709551615"), 206,
            ("Content-Range", $"bytes {DiskSize - 4}-{DiskSize - 1}/{DiskSize}"), ("Content-Length", "4"));
        Success("Range last 2^63-1", Get(Vm, $"Range: bytes={DiskSize - 1}-9223372036854775807"), 206, ("Content-Length", "1"));
        Success("Range suffix 2^63 (-9223372036854775808)", Head(Vm, "Range: bytes=-9223372036854775808"), 206,
            ("Content-Range", $"bytes 0-{DiskSize - 1}/{DiskSize}"), WholeDiskLength);
        Success("Range suffix 2^64", Head(Vm, "Range: bytes=-18446744073709551616"), 206,
            ("Content-Range", $"bytes 0-{DiskSize - 1}/{DiskSize}"), WholeDiskLength);
        Success("Range reversed 5-1 ignored", Head(Vm, "Range: bytes=5-1"), 200, WholeDiskLength);
        Success("Range negative first ignored", Head(Vm, "Range: bytes=-5-10"), 200, WholeDiskLength);
        Success("Range unit items ignored", Head(Vm, "Range: items=0-5"), 200, WholeDiskLength);
        Success("Range without = ignored", Head(Vm, "Range: bytes 0-5"), 200, WholeDiskLength);
        Success("Range letters ignored", Head(Vm, "Range: bytes=a-b"), 200, WholeDiskLength);
        Success("Range hex ignored", Head(Vm, "Range: bytes=0x10-0x20"), 200, WholeDiskLength);
        Success("Range plus sign ignored", Head(Vm, "Range: bytes=+1-2"), 200, WholeDiskLength);
        Success("Range empty set ignored", Head(Vm, "Range: bytes="), 200, WholeDiskLength);
        Success("Range only commas ignored", Head(Vm, "Range: bytes=,,,"), 200, WholeDiskLength);
        Success("Range two field lines ignored", Head(Vm, "Range: bytes=0-1", "Range: bytes=2-3"), 200, WholeDiskLength);
        Problem("Range two ranges", Get(Vm, "Range: bytes=0-1,5-6"), 416, DiskUnsatisfied);
        Problem("Range 2000 ranges", Get(Vm, "Range: bytes=" + string.Join(',', Enumerable.Range(0, 2000).Select(i => $"{i}-{i}"))), 416, DiskUnsatisfied);
        Problem("Range 3000 whole-disk ranges", Get(Vm, "Range: bytes=" + string.Join(',', Enumerable.Repeat("0-", 3000))), 416, DiskUnsatisfied);
        // Over Kestrel's 32 KiB of request headers: refused (431) before routing.
        Kestrel("Range 9000 ranges over the header limit", Get(Vm, "Range: bytes=" + string.Join(',', Enumerable.Repeat("0-0", 9000))), 431);
        Problem("Range on an absent image", Get("/images/nothere/data", "Range: bytes=0-1"), 404);

        // Content-Range on PUT: positions must fit a long, the range must match the body, the
        // complete length (if given) must be the disk's. Every one is refused before a byte is written.
        byte[] ten = "0123456789"u8.ToArray();
        Problem("Content-Range at 2^63-2", Put(Vm, [1], "Content-Range: bytes 9223372036854775806-9223372036854775806/*"), 416, DiskUnsatisfied);
        Problem("Content-Range last 2^63-1", Put(Vm, ten, "Content-Range: bytes 9223372036854775798-9223372036854775807/*"), 400);
        Problem("Content-Range last 2^64-1", Put(Vm, ten, "Content-Range: bytes 0-18446744073709551615/*"), 400);
        Problem("Content-Range first 2^64", Put(Vm, ten, "Content-Range: bytes 18446744073709551616-18446744073709551625/*"), 400);
        Problem("Content-Range complete 2^64", Put(Vm, ten, "Content-Range: bytes 0-9/18446744073709551616"), 400);
        Problem("Content-Range complete 2^63-1", Put(Vm, ten, "Content-Range: bytes 0-9/9223372036854775807"), 400);
        Problem("Content-Range complete not the disk's", Put(Vm, ten, "Content-Range: bytes 0-9/1000"), 416, DiskUnsatisfied);
        Problem("Content-Range */*", Put(Vm, ten, "Content-Range: */*"), 400);
        Problem("Content-Range unsatisfied form", Put(Vm, ten, $"Content-Range: bytes */{DiskSize}"), 400);
        Problem("Content-Range reversed", Put(Vm, ten, "Content-Range: bytes 9-0/*"), 400);
        Problem("Content-Range negative", Put(Vm, ten, "Content-Range: bytes -1-8/*"), 400);
        Problem("Content-Range longer than the body", Put(Vm, ten, "Content-Range: bytes 0-19/*"), 400);
        Problem("Content-Range shorter than the body", Put(Vm, ten, "Content-Range: bytes 0-4/*"), 400);
        Problem("Content-Range past its complete length", Put(Vm, ten, "Content-Range: bytes 0-9/5"), 400);
        Problem("Content-Range unit items", Put(Vm, ten, "Content-Range: items 0-9/*"), 400);
        Problem("Content-Range with =", Put(Vm, ten, "Content-Range: bytes=0-9/*"), 400);
        Problem("Content-Range without length", Put(Vm, ten, "Content-Range: bytes 0-9"), 400);
        Problem("Content-Range empty", Put(Vm, ten, "Content-Range: "), 400);
        Problem("Content-Range two field lines", Put(Vm, ten, "Content-Range: bytes 0-9/*", "Content-Range: bytes 0-9/*"), 400);
        Problem("Content-Range past the end", Put(Vm, ten, $"Content-Range: bytes {DiskSize - 5}-{DiskSize + 4}/*"), 416, DiskUnsatisfied);
        Success("Content-Range missing writes at 0", Put(Scratch, ten), 200);

        // Bodies that lie about their length.
        rows.Add(new Row("PUT body shorter than Content-Length", Put(Scratch, ten, "Content-Length: 100", "Content-Range: bytes 0-99/*"),
            400, Expect.Truncated, RawEnd.HalfClose));
        // The bytes past Content-Length belong to the next request, which "Connection: close" discards.
        Success("PUT body longer than Content-Length", Put(Scratch, [.. ten, .. ten], "Content-Length: 10", "Content-Range: bytes 0-9/*"), 200);
        Problem("PUT chunked body longer than Content-Range", Put(Vm, Chunked([.. ten, .. ten]), "Transfer-Encoding: chunked", "Content-Range: bytes 0-9/*"), 400);
        Problem("PUT chunked body shorter than Content-Range", Put(Vm, Chunked(ten), "Transfer-Encoding: chunked", "Content-Range: bytes 0-19/*"), 400);
        Problem("PUT chunked body past the end of the disk", Put("/images/tiny/data", Chunked(new byte[TinySize + 1]), "Transfer-Encoding: chunked"), 413);
        Problem("PUT no body for a Content-Range", Put(Vm, null, "Content-Range: bytes 0-9/*"), 400);
        Problem("PUT Content-Length past the end", Put(Vm, null, $"Content-Length: {DiskSize + 1}"), 416, DiskUnsatisfied);
        Problem("PUT Content-Length 2^63-1", Put(Vm, null, "Content-Length: 9223372036854775807"), 416, DiskUnsatisfied);
        Problem("PUT Expect 100-continue past the end", Put(Vm, null, $"Content-Length: {DiskSize + 1}", "Expect: 100-continue"), 416, DiskUnsatisfied);
        Problem("PUT malformed chunk size", Put(Vm, "zz\r\nhello\r\n0\r\n\r\n"u8.ToArray(), "Transfer-Encoding: chunked"), 400);
        Problem("PUT chunk size over 2^64", Put(Vm, "1ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"u8.ToArray(), "Transfer-Encoding: chunked"), 400);
        Problem("POST /images chunk size over 2^64", Request("POST", "/images", "1ffffffffffffffffff\r\n{}\r\n0\r\n\r\n"u8.ToArray(), "Transfer-Encoding: chunked"), 400);
        Problem("PUT to an absent image", Put("/images/nothere/data", ten), 404);
        Problem("PUT flush=maybe", Put(Vm + "?flush=maybe", ten), 400);
        // Framing errors Kestrel finds in the head: it answers before routing, without a body.
        Kestrel("PUT Content-Length 2^64", Put(Vm, null, "Content-Length: 18446744073709551616"), 400);
        Kestrel("PUT Content-Length negative", Put(Vm, null, "Content-Length: -1"), 400);
        Kestrel("PUT two Content-Lengths", Put(Vm, ten, "Content-Length: 10", "Content-Length: 11"), 400);
        Kestrel("PUT Transfer-Encoding gzip", Put(Vm, ten, "Transfer-Encoding: gzip"), 400);

        AddNameRows(Problem, Kestrel);
        AddJsonRows(Problem, Success);
        AddMethodRows(Problem, Kestrel, Success);
        return rows;
    }

    /// <summary>
    /// Names that try to leave the store or break the file name. Kestrel decodes %2e and removes dot
    /// segments before routing (so "/images/%2e%2e/data" is "/data", 404), keeps %2F encoded (so it
    /// stays inside the name, 400); a valid name of no image is 404.
    /// </summary>
    private static void AddNameRows(Action<string, byte[], int, (string, string)[]> problem, Action<string, byte[], int> kestrel)
    {
        void Problem(string name, byte[] request, int status) => problem(name, request, status, []);
        Problem("name .. raw", Get("/images/../data"), 404);
        Problem("name %2e%2e", Get("/images/%2e%2e/data"), 404);
        Problem("name %2e%2e%2fvm", Get("/images/%2e%2e%2fvm/data"), 400);
        Problem("name vm%2fdata", Get("/images/vm%2fdata/data"), 400);
        Problem("name %5c..%5cvm", Get("/images/%5c..%5cvm/data"), 400);
        Problem("name vm%0a", Get("/images/vm%0a/data"), 400);
        Problem("name vm%0d%0aX-Injected: 1", Get("/images/vm%0d%0aX-Injected:%201/data"), 400);
        Problem("name with a space", Get("/images/v%20m/data"), 400);
        Problem("name of 300 characters", Get($"/images/{new string('a', 300)}/data"), 400);
        Problem("name of 129 characters", Get($"/images/{new string('a', 129)}/data"), 400);
        Problem("name of 128 characters is valid and absent", Get($"/images/{new string('a', 128)}/data"), 404);
        Problem("name café", Get("/images/caf%C3%A9/data"), 400);
        Problem("name emoji", Get("/images/vm%F0%9F%98%80/data"), 400);
        Problem("name invalid UTF-8 escape", Get("/images/vm%C3%28/data"), 400);
        Problem("name leading dot", Get("/images/.vm/data"), 400);
        Problem("name %2e leading dot", Get("/images/%2evm/data"), 400);
        Problem("name trailing dot is valid and absent", Get("/images/vm./data"), 404);
        Problem("name single dot segment", Get("/images/./data"), 404);
        Problem("DELETE name %2e%2e%2fvm", Request("DELETE", "/images/%2e%2e%2fvm"), 400);
        Problem("DELETE name vm%2f", Request("DELETE", "/images/vm%2f"), 400);
        Problem("close name leading dot", Request("POST", "/images/.vm/close", null, "Content-Length: 0"), 400);
        // What Kestrel refuses in a request target before routing: a NUL, raw or decoded from %00, and
        // bytes beyond ASCII, a LF (the server requires CRLF line ends, see ApiHost) (400); a line over 8 KiB (414).
        kestrel("name raw NUL", Bytes("GET /images/vm\0/data HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"), 400);
        kestrel("name vm%00", Get("/images/vm%00/data"), 400);
        kestrel("DELETE name vm%00", Request("DELETE", "/images/vm%00"), 400);
        kestrel("describe name %00", Get("/images/%00"), 400);
        kestrel("name raw UTF-8", Bytes("GET /images/café/data HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"), 400);
        kestrel("name of 9000 characters", Get($"/images/{new string('a', 9000)}/data"), 414);
        kestrel("name raw LF", Bytes("GET /images/vm\n/data HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"), 400);
        kestrel("head with bare LF line ends", Bytes($"GET {Vm} HTTP/1.1\nHost: test\nConnection: close\n\n"), 400);
    }

    private static byte[] Get(string target, params string[] headers) => Request("GET", target, null, headers);

    private static byte[] Head(string target, params string[] headers) => Request("HEAD", target, null, headers);

    private static byte[] Put(string target, byte[]? body, params string[] headers) => Request("PUT", target, body, headers);

    /// <summary>
    /// One request on its own connection ("Connection: close", so the answer ends when the server
    /// closes). A body gets a Content-Length unless the headers frame it themselves.
    /// </summary>
    private static byte[] Request(string method, string target, byte[]? body = null, params string[] headers)
    {
        var head = new StringBuilder($"{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        foreach (string header in headers)
            head.Append(header).Append("\r\n");
        bool framed = headers.Any(h => h.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)
            || h.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase));
        if (body is not null && !framed)
            head.Append($"Content-Length: {body.Length}\r\n");
        head.Append("\r\n");
        return [.. Encoding.UTF8.GetBytes(head.ToString()), .. body ?? []];
    }

    private static byte[] Bytes(string request) => Encoding.UTF8.GetBytes(request);

    private static byte[] Chunked(byte[] data)
        => [.. Encoding.ASCII.GetBytes($"{data.Length:x}\r\n"), .. data, .. "\r\n0\r\n\r\n"u8];
}
