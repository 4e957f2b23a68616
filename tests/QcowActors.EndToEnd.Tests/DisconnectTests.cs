using System.Net;
using System.Net.Sockets;
using System.Text;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>A client that goes away in the middle of a PUT body gets no 200 and breaks nothing.</summary>
public sealed class DisconnectTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>, IDisposable
{
    private const int MiB = 1024 * 1024;
    private const int Declared = 16 * MiB;
    private const int Sent = Declared / 2;
    private const byte Sentinel = 0x77;

    private readonly TempDirectory _scratch = new("e2e-disconnect");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Client_leaving_mid_put_gets_no_200_and_the_images_stay_clean_and_served(bool reset)
    {
        var victim = reset ? "cut-rst" : "cut-fin";
        var bystander = victim + "-bystander";
        const long size = 64L * MiB;
        var server = fixture.Server;
        var api = server.Api;
        await api.CreateAsync(victim, size);
        await api.CreateAsync(bystander, size);
        using var bystanderModel = DiskModel.InMemory(size);
        var rng = TestSeed.Create(output, 1234, victim);
        await InteropWriteTests.ApplyAsync(api, bystander, bystanderModel, RandomWorkload.Writes(rng, size, 20, 65536, 2 * MiB), rng, flushEvery: 5);

        using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(IPAddress.Loopback, server.Port);
            var head = $"PUT /images/{victim}/data HTTP/1.1\r\nHost: 127.0.0.1:{server.Port}\r\n" +
                       $"Content-Type: application/octet-stream\r\nContent-Range: bytes 0-{Declared - 1}/*\r\nContent-Length: {Declared}\r\n\r\n";
            await socket.SendAsync(Encoding.ASCII.GetBytes(head));
            await socket.SendAsync(Enumerable.Repeat(Sentinel, Sent).ToArray());

            // While the upload hangs half-way, other images are served.
            await DiskAssert.ServedDiskMatchesAsync(api, bystander, bystanderModel);

            var early = new byte[4096];
            var earlyCount = socket.Available > 0 ? socket.Receive(early) : 0;
            Assert.DoesNotContain(" 200 ", Encoding.ASCII.GetString(early, 0, earlyCount));
            if (reset)
            {
                socket.LingerState = new LingerOption(true, 0); // close with RST
                socket.Close();
            }
            else
            {
                socket.Shutdown(SocketShutdown.Send); // FIN: the body ends short of Content-Length
                var response = await ReadUntilClosedAsync(socket, TimeSpan.FromSeconds(30));
                output.WriteLine($"answer to the truncated PUT: {response.Split("\r\n")[0]}");
                Assert.False(response.StartsWith("HTTP/1.1 200", StringComparison.Ordinal), $"a truncated PUT was acknowledged: {response}");
            }
        }

        await api.FlushAsync(victim);
        DiskAssert.CheckIsClean(server.ImagePath(victim));

        // Nothing was acknowledged: each byte is old (zero) or from the part that arrived; nothing past it.
        var cut = await api.GetRangeAsync(victim, 0, Declared);
        var foreign = Array.FindIndex(cut, 0, Sent, b => b != 0 && b != Sentinel);
        Assert.True(foreign < 0, $"byte {foreign} is 0x{(foreign < 0 ? 0 : cut[foreign]):x2}");
        var beyond = Array.FindIndex(cut, Sent, Declared - Sent, b => b != 0);
        Assert.True(beyond < 0, $"byte {beyond}, never sent, is not zero");

        // Both images keep working.
        await api.PutAsync(victim, 3 * MiB, new byte[] { 1, 2, 3 });
        Assert.Equal(new byte[] { 1, 2, 3 }, await api.GetRangeAsync(victim, 3 * MiB, 3));
        await DiskAssert.ServedDiskMatchesAsync(api, bystander, bystanderModel);
        DiskAssert.CheckIsClean(server.ImagePath(victim));
        DiskAssert.CheckIsClean(server.ImagePath(bystander));
        DiskAssert.FileMatchesModel(server.ImagePath(bystander), bystanderModel, _scratch);
    }

    private static async Task<string> ReadUntilClosedAsync(Socket socket, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var received = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token)) > 0)
            {
                received.Write(buffer, 0, n);
            }
        }
        catch (SocketException)
        {
            // Reset by the server: whatever arrived before is the answer.
        }
        catch (OperationCanceledException)
        {
            // No answer and no close within the timeout: not a 200 either.
        }
        return Encoding.ASCII.GetString(received.ToArray());
    }

    public void Dispose() => _scratch.Dispose();
}
