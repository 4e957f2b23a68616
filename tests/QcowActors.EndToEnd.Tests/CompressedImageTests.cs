using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Images `qemu-img convert -c` made (what distributions publish): read byte for byte as QEMU
/// reads them, and written through copy-on-write into normal clusters with every reference of
/// the compressed data dropped (qemu-img check finds no leak and no error).
/// </summary>
public sealed class CompressedImageTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>, IDisposable
{
    private const int MiB = 1024 * 1024;

    private readonly TempDirectory _scratch = new("e2e-compressed");

    public void Dispose() => _scratch.Dispose();

    [Theory]
    [InlineData("zlib", 4096)]
    [InlineData("zlib", 65536)]
    [InlineData("zlib", 2 * MiB)]
    [InlineData("zstd", 4096)]
    [InlineData("zstd", 65536)]
    [InlineData("zstd", 2 * MiB)]
    public async Task A_compressed_image_reads_as_qemu_reads_it_and_takes_random_writes_cleanly(string compression, int clusterSize)
    {
        string name = $"comp-{compression}-{clusterSize}";
        long size = clusterSize >= MiB ? 48L * MiB : 12L * MiB;
        var rng = TestSeed.Create(output, 1100 + clusterSize % 977, name);
        string source = _scratch.File($"{name}-source.raw");
        WriteMixedDisk(source, size, clusterSize, rng);
        string path = fixture.Server.ImagePath(name);
        ProcessRunner.RunChecked(Qemu.QemuImg, ["convert", "-c", "-f", "raw", "-O", "qcow2", "-o", $"cluster_size={clusterSize},compression_type={compression}", source, path]);
        Assert.Contains(Qemu.Map(path), e => e.Data && e.Offset is null); // compressed extents have no host offset
        Assert.Contains(Qemu.Map(path), e => e.Data && e.Offset is not null); // incompressible clusters are stored plainly

        // Reads: QEMU's own raw conversion is the reference.
        string reference = _scratch.File($"{name}-qemu.raw");
        Qemu.ConvertToRaw(path, reference);
        using var model = DiskModel.FromRawFile(reference);
        var api = fixture.Server.Api;
        await DiskAssert.ServedDiskMatchesAsync(api, name, model);
        for (int i = 0; i < 40; i++)
        {
            long length = rng.NextInt64(1, 3L * clusterSize);
            long offset = rng.NextInt64(0, size - length);
            var bytes = await api.GetRangeAsync(name, offset, length);
            Assert.True(model.Describe(offset, bytes) is null, $"GET {offset}+{length}: {model.Describe(offset, bytes)}");
        }

        // Writes: partial ones inflate the old cluster around the new bytes; whole ones just replace it.
        var ops = RandomWorkload.Writes(rng, size, 200, clusterSize, maxLength: 3 * MiB);
        await InteropWriteTests.ApplyAsync(api, name, model, ops, rng, flushEvery: 30);
        await api.FlushAsync(name);
        await DiskAssert.ServedDiskMatchesAsync(api, name, model);
        DiskAssert.CheckIsClean(path);
        DiskAssert.FileMatchesModel(path, model, _scratch);
    }

    [Fact]
    public async Task A_cluster_whose_compressed_data_is_broken_fails_its_read_and_write_clearly_and_the_image_keeps_serving()
    {
        const string name = "comp-broken";
        const int cluster = 65536;
        string source = _scratch.File("broken-source.raw");
        WriteMixedDisk(source, 4L * MiB, cluster, new Random(5));
        string path = fixture.Server.ImagePath(name);
        ProcessRunner.RunChecked(Qemu.QemuImg, ["convert", "-c", "-f", "raw", "-O", "qcow2", source, path]);
        var compressed = Qemu.Map(path).First(e => e.Data && e.Offset is null && e.Start > 0);
        // Garble the compressed bytes of the first compressed cluster: the descriptor stays, its data does not.
        long dataOffset = CompressedDataOffset(path, compressed.Start);
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            file.Position = dataOffset;
            file.Write(Enumerable.Repeat((byte)0xff, 64).ToArray());
        }

        // A range that starts at it: nothing was sent yet, so the answer is a problem.
        using (var first = new HttpRequestMessage(HttpMethod.Get, fixture.Server.DataUrl(name)))
        {
            first.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(compressed.Start, compressed.Start + cluster - 1);
            using var refused = await fixture.Server.Client.SendAsync(first);
            Assert.Equal(422, (int)refused.StatusCode);
            Assert.Contains("cannot be inflated", await refused.Content.ReadAsStringAsync());
        }
        // A read that reaches it after sending earlier bytes is cut there: never a complete-looking body.
        var read = Curl.Run("-o", "/dev/null", "-r", $"0-{compressed.Start + cluster - 1}", fixture.Server.DataUrl(name));
        Assert.NotEqual(0, read.ExitCode);
        using var put = new HttpRequestMessage(HttpMethod.Put, fixture.Server.DataUrl(name)) { Content = new ByteArrayContent([1, 2, 3]) };
        put.Content.Headers.ContentRange = new System.Net.Http.Headers.ContentRangeHeaderValue(compressed.Start + 100, compressed.Start + 102);
        using var write = await fixture.Server.Client.SendAsync(put);
        Assert.Equal(422, (int)write.StatusCode);
        Assert.Contains("cannot be inflated", await write.Content.ReadAsStringAsync());

        // Clusters around it, and other images, still serve.
        var source4k = File.ReadAllBytes(source);
        var plain = Qemu.Map(path).First(e => e.Data && e.Offset is not null);
        Assert.Equal(source4k.AsSpan((int)plain.Start, 4096).ToArray(), await fixture.Server.Api.GetRangeAsync(name, plain.Start, 4096));
        await fixture.Server.Api.PutAsync(name, plain.Start, new byte[] { 9 });
        Assert.Equal(9, (await fixture.Server.Api.GetRangeAsync(name, plain.Start, 1))[0]);
    }

    /// <summary>Where the compressed data of the cluster at virtual offset lies (its descriptor, read from L1 and L2).</summary>
    [Fact]
    public async Task A_compressed_cluster_whose_data_would_start_past_the_end_of_the_file_is_refused_saying_so()
    {
        const string name = "comp-past-eof";
        string source = _scratch.File("past-eof-source.raw");
        WriteMixedDisk(source, 2L * MiB, 65536, new Random(6));
        string path = fixture.Server.ImagePath(name);
        ProcessRunner.RunChecked(Qemu.QemuImg, ["convert", "-c", "-f", "raw", "-O", "qcow2", source, path]);
        var compressed = Qemu.Map(path).First(e => e.Data && e.Offset is null && e.Start > 0);
        var (at, entry, offsetBits) = CompressedEntry(path, compressed.Start);
        long pastEnd = (new FileInfo(path).Length + MiB) & ~511L;
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            file.Position = at;
            var word = new byte[8];
            System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(word, (entry & ~((1L << offsetBits) - 1)) | pastEnd);
            file.Write(word);
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, fixture.Server.DataUrl(name));
        request.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(compressed.Start, compressed.Start + 4095);
        using var refused = await fixture.Server.Client.SendAsync(request);

        Assert.Equal(422, (int)refused.StatusCode);
        Assert.Contains("past the end of the file", await refused.Content.ReadAsStringAsync());
    }

    private static long CompressedDataOffset(string path, long virtualOffset)
    {
        var (_, entry, offsetBits) = CompressedEntry(path, virtualOffset);
        return entry & ((1L << offsetBits) - 1);
    }

    /// <summary>The L2 entry of a compressed cluster: where it lies in the file, its value, and how many low bits hold the host offset.</summary>
    private static (long At, long Entry, int OffsetBits) CompressedEntry(string path, long virtualOffset)
    {
        using var file = File.OpenRead(path);
        byte[] word = new byte[8];
        long ReadWord(long at) { file.Position = at; file.ReadExactly(word); return (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(word); }
        file.Position = 20;
        file.ReadExactly(word.AsSpan(0, 4));
        int bits = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(word);
        long l1Offset = ReadWord(40);
        int l2Bits = bits - 3;
        long cluster = virtualOffset >> bits;
        long l2 = ReadWord(l1Offset + 8 * (cluster >> l2Bits)) & 0x00FF_FFFF_FFFF_FE00L;
        long at = l2 + 8 * (cluster & ((1L << l2Bits) - 1));
        long entry = ReadWord(at);
        Assert.True((entry & (1L << 62)) != 0, $"cluster at {virtualOffset} is not compressed");
        return (at, entry, 62 - (bits - 8));
    }

    /// <summary>Clusters of three kinds: half-entropy bytes (about 2:1 for deflate), zeros (holes after convert) and random bytes (stored plainly).</summary>
    internal static void WriteMixedDisk(string path, long size, int clusterSize, Random rng)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        var buffer = new byte[clusterSize];
        for (long o = 0; o < size; o += clusterSize)
        {
            int kind = (int)(o / clusterSize % 7);
            if (kind is 2) Array.Clear(buffer);
            else if (kind is 5) rng.NextBytes(buffer);
            else for (int i = 0; i < buffer.Length; i++) buffer[i] = (byte)rng.Next(16);
            file.Write(buffer, 0, (int)Math.Min(clusterSize, size - o));
        }
    }
}
