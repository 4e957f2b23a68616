using System.Diagnostics;
using System.Globalization;
using QcowActors.Testing;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Long transfers with the real curl binary, slowed down by --limit-rate: an upload of a file with
/// `curl -T` and a Range download into a file. Each returns what the client saw (exit code, HTTP
/// status, bytes, duration, the node that answered); neither checks anything.
/// </summary>
internal static class ThrottledCurl
{
    private const string NodeHeader = "X-QcowActors-Node";

    /// <summary>
    /// `curl -sS -T file --limit-rate RATE -X PUT -H 'Content-Range: bytes offset-(offset+size-1)/*' url`;
    /// the response body is kept (a problem+json says why a PUT was refused).
    /// </summary>
    public static async Task<CurlTransfer> UploadAsync(string url, string file, long offset, string rate, TempDirectory scratch, TimeSpan maxTime)
    {
        var length = new FileInfo(file).Length;
        var tag = Guid.NewGuid().ToString("N");
        var body = scratch.File($"upload-{tag}.body");
        var headers = scratch.File($"upload-{tag}.headers");
        var result = await RunAsync(
        [
            "-T", file, "-X", "PUT", "--limit-rate", rate,
            "-H", "Content-Type: application/octet-stream",
            "-H", $"Content-Range: bytes {Invariant(offset)}-{Invariant(offset + length - 1)}/*",
            "-o", body, "-D", headers, url,
        ], maxTime).ConfigureAwait(false);
        var text = File.Exists(body) ? await File.ReadAllTextAsync(body).ConfigureAwait(false) : "";
        return result with { What = $"upload of {length} bytes to {url}", Node = NodeOf(headers), ResponseBody = text.Length > 600 ? text[..600] + "..." : text };
    }

    /// <summary>`curl -sS -r first-last --limit-rate RATE -o file url` (no -f: the status is reported, not turned into an exit code).</summary>
    public static async Task<CurlTransfer> DownloadAsync(string url, long first, long last, string rate, string file, TempDirectory scratch, TimeSpan maxTime)
    {
        var headers = scratch.File($"download-{Guid.NewGuid():N}.headers");
        var result = await RunAsync(
        [
            "-r", $"{Invariant(first)}-{Invariant(last)}", "--limit-rate", rate,
            "-o", file, "-D", headers, url,
        ], maxTime).ConfigureAwait(false);
        return result with { What = $"download of bytes {first}-{last} ({last - first + 1} bytes) from {url}", Node = NodeOf(headers) };
    }

    private static async Task<CurlTransfer> RunAsync(string[] arguments, TimeSpan maxTime)
    {
        var watch = Stopwatch.StartNew();
        var result = await ProcessRunner.RunAsync("curl",
            ["-sS", "--max-time", Invariant((long)maxTime.TotalSeconds), "-w", "%{http_code} %{size_upload} %{size_download}", .. arguments],
            new ProcessRunOptions { Timeout = maxTime + TimeSpan.FromSeconds(30) }).ConfigureAwait(false);
        watch.Stop();
        var fields = result.Stdout.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        long Field(int i) => fields.Length > i && long.TryParse(fields[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : -1;
        return new CurlTransfer("", result.ExitCode, (int)Field(0), Field(1), Field(2), watch.Elapsed, null, result.Stderr.Trim(), "");
    }

    /// <summary>The last X-QcowActors-Node value curl saw (after a 100 Continue there are two header blocks).</summary>
    private static string? NodeOf(string headersFile)
    {
        if (!File.Exists(headersFile))
        {
            return null;
        }
        return File.ReadAllLines(headersFile)
            .Where(l => l.StartsWith(NodeHeader + ":", StringComparison.OrdinalIgnoreCase))
            .Select(l => l[(NodeHeader.Length + 1)..].Trim())
            .LastOrDefault();
    }

    private static string Invariant(long value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>What a curl client saw at the end of a transfer.</summary>
internal sealed record CurlTransfer(
    string What,
    int ExitCode,
    int HttpCode,
    long BytesUploaded,
    long BytesDownloaded,
    TimeSpan Elapsed,
    string? Node,
    string Stderr,
    string ResponseBody)
{
    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture,
            $"{What}: curl exit {ExitCode}, HTTP {HttpCode}, {BytesUploaded} bytes up, {BytesDownloaded} bytes down, {Elapsed.TotalSeconds:F1} s, node {Node ?? "(none)"}")
           + (Stderr.Length > 0 ? $", curl said: {Stderr}" : "")
           + (ResponseBody.Length > 0 ? $", body: {ResponseBody}" : "");
}

/// <summary><see cref="Pattern"/> bytes in files: written once for curl -T, and compared with what curl downloaded.</summary>
internal static class PatternFile
{
    private const int Chunk = 1024 * 1024;

    /// <summary>Writes the pattern bytes of disk offsets [position, position+length) to a new file.</summary>
    public static string Write(string path, ulong seed, long position, long length)
    {
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, Chunk);
        var buffer = new byte[Chunk];
        for (long done = 0; done < length; done += Chunk)
        {
            var n = (int)Math.Min(Chunk, length - done);
            Pattern.Fill(seed, position + done, buffer.AsSpan(0, n));
            file.Write(buffer, 0, n);
        }
        return path;
    }

    /// <summary>
    /// Null when the file holds exactly the pattern bytes of [position, position+length);
    /// otherwise what is wrong (its length, or the first byte that differs).
    /// </summary>
    public static string? Describe(string path, ulong seed, long position, long length)
    {
        if (!File.Exists(path))
        {
            return $"{path} does not exist";
        }
        var actualLength = new FileInfo(path).Length;
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, Chunk);
        var actual = new byte[Chunk];
        var expected = new byte[Chunk];
        for (long done = 0; done < Math.Min(length, actualLength); done += Chunk)
        {
            var n = (int)Math.Min(Chunk, Math.Min(length, actualLength) - done);
            file.ReadExactly(actual, 0, n);
            Pattern.Fill(seed, position + done, expected.AsSpan(0, n));
            var diff = (int)DiskModel.FirstDifference(expected.AsSpan(0, n), actual.AsSpan(0, n));
            if (diff >= 0)
            {
                return $"disk offset {position + done + diff}: expected 0x{expected[diff]:x2}, got 0x{actual[diff]:x2}";
            }
        }
        return actualLength == length ? null : $"{actualLength} bytes instead of {length} (the bytes that arrived are right)";
    }
}

/// <summary>
/// The server log lines that tell what happened to the images during a transfer (every
/// `qcow-writer open|close` line, warnings, failures) from <see cref="Start"/> on, each with the
/// seconds since then and the node it came from, for the test output.
/// </summary>
internal sealed class ServerEvents
{
    private const int MaxLines = 60;
    private const int MaxLineChars = 500;

    /// <summary>Environment that makes the console logger write one line per entry, so a message can be matched.</summary>
    public static readonly IReadOnlyDictionary<string, string> SingleLineLogging = new Dictionary<string, string>
    {
        ["Logging__Console__FormatterName"] = "simple",
        ["Logging__Console__FormatterOptions__SingleLine"] = "true",
    };
    private readonly Stopwatch _clock = new();
    private readonly List<string> _lines = [];
    private volatile bool _recording;

    /// <summary>A <see cref="ServerOptions.OutputLine"/> callback for the node called <paramref name="node"/>.</summary>
    public Action<string> For(string node) => line =>
    {
        if (!_recording
            || (!line.Contains("qcow-writer", StringComparison.Ordinal)
                && !line.Contains("warn", StringComparison.OrdinalIgnoreCase)
                && !line.Contains("fail", StringComparison.OrdinalIgnoreCase)
                && !line.Contains("abort", StringComparison.OrdinalIgnoreCase)))
        {
            return;
        }
        lock (_lines)
        {
            if (_lines.Count < MaxLines)
            {
                var text = line.Trim();
                text = text.Length > MaxLineChars ? text[..MaxLineChars] + " ..." : text;
                _lines.Add(string.Create(CultureInfo.InvariantCulture, $"{_clock.Elapsed.TotalSeconds,6:F1} s {node}: {text}"));
            }
        }
    };

    /// <summary>Starts recording (at the start of the transfers); the times are seconds since this call.</summary>
    public void Start()
    {
        _clock.Restart();
        _recording = true;
    }

    public override string ToString()
    {
        lock (_lines)
        {
            return _lines.Count == 0 ? "(no server log line about images)" : string.Join(System.Environment.NewLine, _lines);
        }
    }
}
