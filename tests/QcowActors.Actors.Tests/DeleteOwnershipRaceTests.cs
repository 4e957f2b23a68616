using Akka.Actor;
using QcowActors.Actors.Cluster;
using QcowActors.Actors.Image;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Actors.Store;
using Xunit;

namespace QcowActors.Actors.Tests;

/// <summary>
/// Two nodes over one store directory, as in a cluster: each a real store actor with its own
/// ownership record. When an image moves from node A to node B, a DELETE that reaches A late
/// (A no longer owns it, or still believes it does while B has opened it) must never unlink the
/// file B writes to: its acknowledged writes would vanish with the directory entry.
/// </summary>
public sealed class DeleteOwnershipRaceTests : EngineTestBase
{
    private const long Size = 64L << 20;
    private readonly ImageOwnership _ownerA = new();
    private readonly ImageOwnership _ownerB = new();
    private readonly ImageService _nodeA;
    private readonly ImageService _nodeB;

    public DeleteOwnershipRaceTests()
    {
        var budget = new MetadataBudget(Options.MetadataCacheBytesPerImage, Options.MetadataCacheBytesTotal);
        _nodeA = new ImageService(Sys.ActorOf(ImageStoreActor.Props(StoreDirectory, new DiskFileSystem(), Budget, Options, _ownerA), "node-a"), Options);
        _nodeB = new ImageService(Sys.ActorOf(ImageStoreActor.Props(StoreDirectory, new DiskFileSystem(), budget, Options, _ownerB), "node-b"), Options);
    }

    private static byte[] Pattern(int seed, int length)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>A hands the image to B the way the shard entities do: A's entity stops (revoked), B's starts (granted).</summary>
    private async Task HandOffAsync(string name)
    {
        _ownerA.Revoke(name);
        await _nodeA.CloseAsync(name, default);
        _ownerB.Grant(name);
    }

    [Fact]
    public async Task A_late_delete_on_the_former_owner_is_refused_and_the_new_owner_keeps_writing()
    {
        _ownerA.Grant("moved");
        await _nodeA.CreateAsync("moved", Size, null, null, default);
        await _nodeA.WriteAsync("moved", 0, Pattern(1, 65536), default);
        await _nodeA.FlushAsync("moved", default);
        await HandOffAsync("moved");
        var written = Pattern(2, 65536);
        await _nodeB.WriteAsync("moved", 1 << 20, written, default);

        var refused = await Assert.ThrowsAsync<ImageException>(() => _nodeA.DeleteAsync("moved", default));

        Assert.Equal(ImageError.Unavailable, refused.Error);
        Assert.True(File.Exists(ImagePath("moved")), "the former owner unlinked the image its new owner has open");
        var more = Pattern(3, 65536);
        await _nodeB.WriteAsync("moved", 2 << 20, more, default);
        await _nodeB.FlushAsync("moved", default);
        Assert.Equal(Pattern(1, 65536), await ReadAsync(_nodeB, "moved", 0, 65536));
        Assert.Equal(written, await ReadAsync(_nodeB, "moved", 1 << 20, 65536));
        Assert.Equal(more, await ReadAsync(_nodeB, "moved", 2 << 20, 65536));
        await _nodeB.CloseAsync("moved", default);
        var (exit, output) = QemuCheck(ImagePath("moved"));
        Assert.True(exit == 0, output);
    }

    [Fact]
    public async Task A_stale_owner_cannot_unlink_while_the_new_owner_holds_the_image_open()
    {
        // The window the ownership check cannot close alone: A has not yet learnt that B owns the image.
        _ownerA.Grant("window");
        await _nodeA.CreateAsync("window", Size, null, null, default);
        await _nodeA.CloseAsync("window", default);
        _ownerB.Grant("window");
        var written = Pattern(4, 1 << 20);
        await _nodeB.WriteAsync("window", 4 << 20, written, default);
        await _nodeB.FlushAsync("window", default);

        var refused = await Assert.ThrowsAsync<ImageException>(() => _nodeA.DeleteAsync("window", default));

        Assert.Equal(ImageError.Unavailable, refused.Error);
        Assert.Contains("held open", refused.Message);
        Assert.True(File.Exists(ImagePath("window")), "the stale owner unlinked the image under the new owner's lock");
        Assert.Equal(written, await ReadAsync(_nodeB, "window", 4 << 20, written.Length));
    }

    [Fact]
    public async Task A_delete_racing_the_new_owners_open_never_loses_an_acknowledged_write()
    {
        // Both nodes believe they own the image (the hand-off window); A deletes while B opens and
        // writes. Either may win, but a write B acknowledged must be in a file that still exists.
        int deletesWon = 0, writesWon = 0;
        for (int round = 0; round < 40; round++)
        {
            string name = $"race{round}";
            _ownerA.Grant(name);
            _ownerB.Grant(name);
            await _nodeA.CreateAsync(name, Size, null, null, default);
            await _nodeA.CloseAsync(name, default);
            var data = Pattern(round, 4096);
            var write = Task.Run(async () =>
            {
                await Task.Delay(round % 4);
                await _nodeB.WriteAsync(name, 8192, data, default);
                await _nodeB.FlushAsync(name, default);
            });
            var delete = Task.Run(async () =>
            {
                await Task.Delay((round / 4) % 4);
                await _nodeA.DeleteAsync(name, default);
            });
            bool written = await Succeeded(write), deleted = await Succeeded(delete);

            if (written)
            {
                writesWon++;
                Assert.False(deleted, $"round {round}: the delete succeeded after B acknowledged a flushed write");
                Assert.True(File.Exists(ImagePath(name)), $"round {round}: B's acknowledged write is in an unlinked file");
                Assert.Equal(data, await ReadAsync(_nodeB, name, 8192, data.Length));
                await _nodeB.CloseAsync(name, default);
                var (exit, output) = QemuCheck(ImagePath(name));
                Assert.True(exit == 0, $"round {round}: {output}");
            }
            else
            {
                Assert.True(deleted, $"round {round}: neither the write nor the delete succeeded");
                Assert.False(File.Exists(ImagePath(name)));
                deletesWon++;
            }
        }
        Assert.True(writesWon + deletesWon == 40, $"writes won {writesWon}, deletes won {deletesWon}");
    }

    private static async Task<bool> Succeeded(Task task)
    {
        try
        {
            await task;
            return true;
        }
        catch (ImageException e) when (e.Error is ImageError.Unavailable or ImageError.NotFound or ImageError.Conflict)
        {
            return false;
        }
    }
}
