using System.Diagnostics;
using System.Globalization;
using System.Net;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// SIGTERM while a long upload and a long download are streaming: the node waits for them only a
/// bounded time and then ends them so that the client sees an error (a reset, a cut body, an error
/// status), never a 200 to an upload whose body did not all arrive nor a short download that
/// looks complete; and it exits within a bound. Passivation plays no part (PassivateAfter 5 min).
/// </summary>
public sealed class ShutdownMidTransferTests(ITestOutputHelper output) : IDisposable
{
    private const long MiB = 1024L * 1024;
    private const long GiB = 1024 * MiB;

    /// <summary>192 MiB at 4 MiB/s: 48 s, far longer than the signal (at 5 s) plus the exit bound (30 s).</summary>
    private const long TransferBytes = 192 * MiB;
    private const string Rate = "4M";
    private static readonly TimeSpan SignalAfter = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ExitBound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan MaxTime = TimeSpan.FromSeconds(120);

    // One image: the download reads a region written beforehand, the upload writes another one.
    private const long DownloadOffset = 0;
    private const long UploadOffset = 512 * MiB;
    private const ulong UploadSeed = 0x7E53_0001;
    private const ulong DownloadSeed = 0x7E53_0002;

    private readonly TempDirectory _scratch = new("e2e-sigterm");
    private readonly ServerEvents _events = new();

    private static Dictionary<string, string> Environment => new(ServerEvents.SingleLineLogging)
    {
        ["Storage__PassivateAfter"] = "00:05:00",
    };

    [Fact]
    public async Task SIGTERM_during_a_throttled_upload_and_download_ends_both_with_an_error_the_client_sees_and_the_server_exits_within_30_seconds()
    {
        await using var server = await ServerProcess.StartAsync(new ServerOptions { Environment = Environment, OutputLine = _events.For("server") });
        const string image = "term";
        await server.Api.CreateAsync(image, GiB);

        var (up, down, exit) = await SignalMidTransferAsync(server.Api, server, server.DataUrl(image));

        AssertClientsSawTheCut(up, down);
        Assert.True(exit.Code == 0, $"After SIGTERM the server exited with code {exit.Code} after {exit.Seconds:F1} s, expected 0 within {ExitBound.TotalSeconds} s");
        DiskAssert.CheckIsClean(server.ImagePath(image));
    }

    [Fact]
    public async Task SIGTERM_to_the_owner_during_a_throttled_upload_and_download_through_the_other_node_ends_both_with_an_error_the_client_sees()
    {
        await using var cluster = await TwoNodeCluster.StartAsync("sigterm", Environment, _events);
        const string image = "term-fwd";
        await cluster.Nodes[0].Api.CreateAsync(image, GiB);
        var (owner, relay, ownerAddress) = await cluster.OwnerOfAsync(image);
        output.WriteLine($"{image} is owned by {ownerAddress} (pid {owner.Pid}); the transfers go to {cluster.AddressOf(relay)} ({relay.BaseUrl}); SIGTERM goes to the owner");

        var (up, down, exit) = await SignalMidTransferAsync(relay.Api, owner, relay.DataUrl(image));

        AssertClientsSawTheCut(up, down);
        Assert.True(exit.Code == 0, $"After SIGTERM the owner exited with code {exit.Code} after {exit.Seconds:F1} s, expected 0 within {ExitBound.TotalSeconds} s");
        Assert.False(relay.HasExited, $"The node that forwarded the transfers exited with code {relay.ExitCode}");

        // The image moved to the remaining node and is served there, with the region written before the transfers.
        var head = await relay.Api.GetRangeAsync(image, DownloadOffset, MiB);
        var expected = new byte[MiB];
        Pattern.Fill(DownloadSeed, DownloadOffset, expected);
        Assert.True(DiskModel.FirstDifference(expected, head) < 0, "after the hand-off the remaining node serves different bytes in the region written before the transfers");
        using var probe = new HttpRequestMessage(HttpMethod.Get, $"images/{image}/data");
        probe.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(0, 0);
        using var response = await relay.Client.SendAsync(probe);
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        Assert.Equal(cluster.AddressOf(relay), Assert.Single(response.Headers.GetValues(TwoNodeCluster.NodeHeader)));
    }

    /// <summary>
    /// Fills the download region, starts the throttled upload and download through <paramref name="url"/>,
    /// sends SIGTERM to <paramref name="victim"/> after <see cref="SignalAfter"/> (both transfers must
    /// still be running then), waits up to <see cref="ExitBound"/> for it to exit (killing it after that),
    /// and returns what the clients saw. Fails if the victim did not exit within the bound.
    /// </summary>
    private async Task<(CurlTransfer Up, CurlTransfer Down, (int? Code, double Seconds) Exit)> SignalMidTransferAsync(ImageApi api, ServerProcess victim, string url)
    {
        var image = new Uri(url).Segments[^2].TrimEnd('/');
        using (var fill = new PatternContent(DownloadSeed, DownloadOffset, TransferBytes, knownLength: true))
        {
            await api.PutAsync(image, DownloadOffset, fill, TransferBytes);
        }
        var source = PatternFile.Write(_scratch.File("upload.bin"), UploadSeed, UploadOffset, TransferBytes);
        var received = _scratch.File("download.bin");

        output.WriteLine($"{TransferBytes / MiB} MiB each way at --limit-rate {Rate} (~{TransferBytes / MiB / 4} s), both at once; SIGTERM after {SignalAfter.TotalSeconds} s");
        _events.Start();
        var started = Stopwatch.StartNew();
        var uploading = ThrottledCurl.UploadAsync(url, source, UploadOffset, Rate, _scratch, MaxTime);
        var downloading = ThrottledCurl.DownloadAsync(url, DownloadOffset, DownloadOffset + TransferBytes - 1, Rate, received, _scratch, MaxTime);
        await Task.Delay(SignalAfter);

        var uploadRunning = !uploading.IsCompleted;
        var downloadRunning = !downloading.IsCompleted;
        var signalled = started.Elapsed;
        var downloadedBefore = File.Exists(received) ? new FileInfo(received).Length : 0;
        victim.Signal("TERM");
        var sinceSignal = Stopwatch.StartNew();
        int? exitCode;
        try
        {
            exitCode = await victim.WaitForExitAsync(ExitBound + TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            exitCode = null;
            victim.Kill();
        }
        var exitSeconds = sinceSignal.Elapsed.TotalSeconds;

        var up = await uploading;
        var down = await downloading;
        output.WriteLine($"SIGTERM at {signalled.TotalSeconds:F1} s (upload running: {uploadRunning}, download running: {downloadRunning}, {downloadedBefore} bytes downloaded by then)");
        output.WriteLine(exitCode is { } code
            ? $"pid {victim.Pid} exited with code {code} {exitSeconds:F1} s after SIGTERM"
            : $"pid {victim.Pid} had not exited {exitSeconds:F1} s after SIGTERM and was killed");
        output.WriteLine(up.ToString());
        output.WriteLine(down.ToString());
        output.WriteLine("server log from the start of the transfers:");
        output.WriteLine(_events.ToString());

        Assert.True(uploadRunning && downloadRunning,
            $"A transfer ended before the SIGTERM, so the test proves nothing about it:{System.Environment.NewLine}{up}{System.Environment.NewLine}{down}");
        Assert.True(exitCode is not null && exitSeconds <= ExitBound.TotalSeconds,
            $"pid {victim.Pid} did not exit within {ExitBound.TotalSeconds} s of SIGTERM ({(exitCode is null ? "killed" : $"exit code {exitCode}")} after {exitSeconds:F1} s)");

        // Whatever part of the download arrived must be the right bytes.
        var prefix = File.Exists(received) ? new FileInfo(received).Length : 0;
        var arrived = PatternFile.Describe(received, DownloadSeed, DownloadOffset, prefix);
        Assert.True(prefix == 0 || arrived is null, $"The {prefix} bytes the download received before the cut are wrong: {arrived}");
        return (up, down, (exitCode, exitSeconds));
    }

    private static void AssertClientsSawTheCut(CurlTransfer up, CurlTransfer down)
    {
        Assert.True(up.HttpCode != 200,
            $"The upload client saw 200 for a {TransferBytes}-byte body that could not have arrived before the server stopped ({up.BytesUploaded} bytes sent): {up}");
        Assert.True(down.ExitCode != 0,
            $"The download ended with curl exit code 0 and {down.BytesDownloaded} of {TransferBytes} bytes: a cut transfer looks complete to the client: {down}");
    }

    public void Dispose() => _scratch.Dispose();
}
