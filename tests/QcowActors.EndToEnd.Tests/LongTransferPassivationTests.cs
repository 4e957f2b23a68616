using System.Globalization;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// An image is idle only when no request is in flight and none started within
/// Storage:PassivateAfter: a throttled curl upload and a throttled curl download that each last ten
/// times PassivateAfter run to the end, on the owner and through the node that does not own the
/// images, and every byte is right. The upload and the download of a scenario run at the same time.
/// </summary>
/// <remarks>
/// The download is longer than 1 GiB: the server maps a GET one gigabyte at a time
/// (DiskReadEndpoints.PlanSegment), and a read already mapped survives the image being closed
/// under it, so only a download that needs a new mapping after the image went idle shows the
/// closure. 1224 MiB at 36 MiB/s crosses that boundary after ~28 s.
/// </remarks>
public sealed class LongTransferPassivationTests(ITestOutputHelper output) : IDisposable
{
    private const long MiB = 1024L * 1024;
    private const long GiB = 1024 * MiB;
    private static readonly TimeSpan PassivateAfter = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan MinimumDuration = 10 * PassivateAfter;
    private static readonly TimeSpan MaxTime = TimeSpan.FromSeconds(150);

    /// <summary>136 MiB at 4 MiB/s: 34 s.</summary>
    private const long UploadBytes = 136 * MiB;
    private const string UploadRate = "4M";
    private const long UploadOffset = 128 * MiB;
    private const ulong UploadSeed = 0x5107_0001;

    /// <summary>1224 MiB at 36 MiB/s: 34 s.</summary>
    private const long DownloadBytes = 1224 * MiB;
    private const string DownloadRate = "36M";
    private const long DownloadOffset = 0;
    private const ulong DownloadSeed = 0x5107_0002;
    private const long FillChunk = 64 * MiB;

    private readonly TempDirectory _scratch = new("e2e-long-transfer");
    private readonly ServerEvents _events = new();

    private static Dictionary<string, string> Environment => new(ServerEvents.SingleLineLogging)
    {
        ["Storage__PassivateAfter"] = PassivateAfter.ToString("c", CultureInfo.InvariantCulture),
    };

    [Fact]
    public async Task A_throttled_30_second_upload_and_download_complete_while_PassivateAfter_is_3_seconds()
    {
        await using var server = await ServerProcess.StartAsync(new ServerOptions { Environment = Environment, OutputLine = _events.For("server") });
        await server.Api.CreateAsync("slow-up", GiB);
        await server.Api.CreateAsync("slow-down", 2 * GiB);

        await TransferBothWaysAsync(server.Api, upload: server.DataUrl("slow-up"), download: server.DataUrl("slow-down"),
            uploadOwner: null, downloadOwner: null);
    }

    [Fact]
    public async Task A_throttled_30_second_upload_and_download_through_the_node_that_does_not_own_the_images_complete_while_PassivateAfter_is_3_seconds()
    {
        await using var cluster = await TwoNodeCluster.StartAsync("long-transfer", Environment, _events);
        var api = cluster.Nodes[0].Api;
        await api.CreateAsync("fwd-up", GiB);
        await api.CreateAsync("fwd-down", 2 * GiB);
        var (_, uploadRelay, uploadOwner) = await cluster.OwnerOfAsync("fwd-up");
        var (_, downloadRelay, downloadOwner) = await cluster.OwnerOfAsync("fwd-down");
        output.WriteLine($"node0 {cluster.Addresses[0]} at {cluster.Nodes[0].BaseUrl}, node1 {cluster.Addresses[1]} at {cluster.Nodes[1].BaseUrl}");
        output.WriteLine($"fwd-up is owned by {uploadOwner}: the upload goes to the other node, {uploadRelay.BaseUrl}");
        output.WriteLine($"fwd-down is owned by {downloadOwner}: the download goes to the other node, {downloadRelay.BaseUrl}");

        await TransferBothWaysAsync(api, upload: uploadRelay.DataUrl("fwd-up"), download: downloadRelay.DataUrl("fwd-down"),
            uploadOwner: uploadOwner, downloadOwner: downloadOwner);
    }

    /// <summary>
    /// Fills the download region through <paramref name="api"/>, then runs the throttled upload and
    /// download at once and checks what each client saw, the bytes, and that each took longer than
    /// 10 x PassivateAfter. A non-null owner is the node that must have executed the request.
    /// Every problem found is reported together.
    /// </summary>
    private async Task TransferBothWaysAsync(ImageApi api, string upload, string download, string? uploadOwner, string? downloadOwner)
    {
        var downloadImage = new Uri(download).Segments[^2].TrimEnd('/');
        // In PUTs of 64 MiB: each is over well within PassivateAfter, so filling does not depend on what is tested.
        for (long done = 0; done < DownloadBytes; done += FillChunk)
        {
            var length = Math.Min(FillChunk, DownloadBytes - done);
            using var fill = new PatternContent(DownloadSeed, DownloadOffset + done, length, knownLength: true);
            await api.PutAsync(downloadImage, DownloadOffset + done, fill, length, flush: false);
        }
        await api.FlushAsync(downloadImage);
        var source = PatternFile.Write(_scratch.File("upload.bin"), UploadSeed, UploadOffset, UploadBytes);
        var received = _scratch.File("download.bin");

        output.WriteLine($"PassivateAfter {PassivateAfter.TotalSeconds} s; at the same time: upload of {UploadBytes / MiB} MiB at --limit-rate {UploadRate}, " +
                         $"download of {DownloadBytes / MiB} MiB at --limit-rate {DownloadRate}; each must take more than {MinimumDuration.TotalSeconds} s");
        _events.Start();
        var uploading = ThrottledCurl.UploadAsync(upload, source, UploadOffset, UploadRate, _scratch, MaxTime);
        var downloading = ThrottledCurl.DownloadAsync(download, DownloadOffset, DownloadOffset + DownloadBytes - 1, DownloadRate, received, _scratch, MaxTime);
        var up = await uploading;
        var down = await downloading;
        output.WriteLine(up.ToString());
        output.WriteLine(down.ToString());
        output.WriteLine("server log during the transfers:");
        output.WriteLine(_events.ToString());

        var problems = new List<string>();
        if (up.ExitCode != 0 || up.HttpCode != 200)
        {
            problems.Add($"The upload ended after {up.Elapsed.TotalSeconds:F1} s without a 200 (curl exit {up.ExitCode}, HTTP {up.HttpCode}, " +
                         $"{up.BytesUploaded} of {UploadBytes} bytes sent; was the image closed under it? PassivateAfter is {PassivateAfter.TotalSeconds} s): {up}");
        }
        else
        {
            var readBack = _scratch.File("readback.bin");
            var check = Curl.Run("-f", "-r", $"{UploadOffset}-{UploadOffset + UploadBytes - 1}", "-o", readBack, upload);
            var wrong = check.ExitCode == 0 ? PatternFile.Describe(readBack, UploadSeed, UploadOffset, UploadBytes) : $"reading it back failed: {check}";
            if (wrong is not null) problems.Add($"The uploaded bytes do not read back: {wrong}");
            else output.WriteLine($"the {UploadBytes} uploaded bytes read back identical");
        }
        if (down.ExitCode != 0 || down.HttpCode != 206 || down.BytesDownloaded != DownloadBytes)
        {
            problems.Add($"The download ended after {down.Elapsed.TotalSeconds:F1} s without all its bytes (curl exit {down.ExitCode}, HTTP {down.HttpCode}, " +
                         $"{down.BytesDownloaded} of {DownloadBytes} bytes; was the image closed under it? PassivateAfter is {PassivateAfter.TotalSeconds} s): {down}");
        }
        var downloaded = PatternFile.Describe(received, DownloadSeed, DownloadOffset, DownloadBytes);
        if (downloaded is not null && down.BytesDownloaded == DownloadBytes) problems.Add($"The downloaded bytes are wrong: {downloaded}");
        else if (downloaded is null) output.WriteLine($"the {DownloadBytes} downloaded bytes are right");

        // A success must come from the owner (the request was forwarded to it, and the image stayed there).
        if (uploadOwner is not null && up.HttpCode == 200 && up.Node != uploadOwner)
        {
            problems.Add($"The upload was executed by {up.Node ?? "(no header)"}, not by the owner {uploadOwner}: it was not forwarded, or the image moved");
        }
        if (downloadOwner is not null && down.HttpCode == 206 && down.Node != downloadOwner)
        {
            problems.Add($"The download was executed by {down.Node ?? "(no header)"}, not by the owner {downloadOwner}: it was not forwarded, or the image moved");
        }
        if (problems.Count == 0)
        {
            // Only a transfer that succeeded can be too fast: then --limit-rate did not hold it back and it proves nothing.
            if (up.Elapsed <= MinimumDuration)
            {
                problems.Add($"The upload took {up.Elapsed.TotalSeconds:F1} s, not more than 10 x PassivateAfter = {MinimumDuration.TotalSeconds} s: the test proves nothing");
            }
            if (down.Elapsed <= MinimumDuration)
            {
                problems.Add($"The download took {down.Elapsed.TotalSeconds:F1} s, not more than 10 x PassivateAfter = {MinimumDuration.TotalSeconds} s: the test proves nothing");
            }
        }
        Assert.True(problems.Count == 0, string.Join(System.Environment.NewLine, problems));
    }

    public void Dispose() => _scratch.Dispose();
}
