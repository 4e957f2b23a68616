using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Eight clients write at once into the same clusters (each owns its own byte ranges), four readers race
/// them. Every byte a reader sees must be the old content or a value its owner wrote, never older than
/// what was acknowledged before the read was sent; afterwards every acknowledged byte is in place.
/// </summary>
public sealed class ConcurrencyTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>, IDisposable
{
    private const int Writers = 8;
    private const int Readers = 4;
    private const int Rounds = 5;
    private const int Cluster = 65536;
    private const int Region = 16 * Cluster;     // the clusters everybody writes into
    private const int Prefilled = Region / 2;    // allocated before the race; the rest is allocated during it
    private const byte OldValue = 0x11;

    private readonly TempDirectory _scratch = new("e2e-concurrency");

    [Fact]
    public async Task Concurrent_writers_to_shared_clusters_keep_every_acknowledged_byte_and_readers_see_no_foreign_bytes()
    {
        const string name = "race";
        const long size = 16L * 1024 * 1024;
        var server = fixture.Server;
        await server.Api.CreateAsync(name, size, Cluster);
        await server.Api.PutAsync(name, 0, Enumerable.Repeat(OldValue, Prefilled).ToArray());

        var rng = TestSeed.Create(output, 31337, name);
        var stripes = MakeStripes(rng);
        var stripeOf = new int[Region];
        for (var s = 0; s < stripes.Count; s++)
        {
            Array.Fill(stripeOf, s, (int)stripes[s].Op.Offset, stripes[s].Op.Length);
        }
        output.WriteLine($"{stripes.Count} stripes over {Region / Cluster} clusters");

        var acked = Enumerable.Repeat(-1, stripes.Count).ToArray(); // last acknowledged round per stripe
        var started = Enumerable.Repeat(-1, Writers).ToArray();     // round each writer has begun
        using var stop = new CancellationTokenSource();
        var writerSeeds = Enumerable.Range(0, Writers).Select(_ => rng.Next()).ToArray();
        var readerSeeds = Enumerable.Range(0, Readers).Select(_ => rng.Next()).ToArray();

        var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(() => WriteAsync(w, new Random(writerSeeds[w]))));
        var readers = Enumerable.Range(0, Readers).Select(r => Task.Run(() => ReadAsync(new Random(readerSeeds[r]))));
        var readerTasks = readers.ToArray();
        try
        {
            await Task.WhenAll(writers);
        }
        finally
        {
            stop.Cancel();
        }
        var reads = (await Task.WhenAll(readerTasks)).Sum();
        output.WriteLine($"{reads} racing reads checked");
        Assert.True(reads > 0, "no read raced the writers");

        using var model = DiskModel.InMemory(size);
        model.Write(0, Enumerable.Repeat(OldValue, Prefilled).ToArray());
        foreach (var stripe in stripes)
        {
            model.Write(stripe.Op.Offset, Enumerable.Repeat(Value(stripe.Owner, Rounds - 1), stripe.Op.Length).ToArray());
        }
        var region = await server.Api.GetRangeAsync(name, 0, Region);
        Assert.True(model.Describe(0, region) is null, model.Describe(0, region));
        DiskAssert.CheckIsClean(server.ImagePath(name));
        DiskAssert.FileMatchesModel(server.ImagePath(name), model, _scratch);

        async Task WriteAsync(int writer, Random random)
        {
            using var client = new HttpClient { BaseAddress = server.Client.BaseAddress };
            var api = new ImageApi(client);
            var mine = Enumerable.Range(0, stripes.Count).Where(s => stripes[s].Owner == writer).ToArray();
            for (var round = 0; round < Rounds; round++)
            {
                Volatile.Write(ref started[writer], round);
                random.Shuffle(mine);
                foreach (var s in mine)
                {
                    var op = stripes[s].Op;
                    await api.PutAsync(name, op.Offset, Enumerable.Repeat(Value(writer, round), op.Length).ToArray(), flush: random.Next(20) == 0);
                    Volatile.Write(ref acked[s], round);
                }
            }
            await api.FlushAsync(name); // one flush per connection, as imageio clients do
        }

        async Task<int> ReadAsync(Random random)
        {
            using var client = new HttpClient { BaseAddress = server.Client.BaseAddress };
            var api = new ImageApi(client);
            var count = 0;
            while (!stop.IsCancellationRequested)
            {
                var length = random.Next(1, 128 * 1024);
                var offset = random.Next(0, Region - length + 1);
                var ackedBefore = new int[stripes.Count];
                for (var s = 0; s < ackedBefore.Length; s++)
                {
                    ackedBefore[s] = Volatile.Read(ref acked[s]);
                }
                var bytes = await api.GetRangeAsync(name, offset, length);
                var startedAfter = new int[Writers];
                for (var w = 0; w < Writers; w++)
                {
                    startedAfter[w] = Volatile.Read(ref started[w]);
                }
                for (var i = 0; i < bytes.Length; i++)
                {
                    var p = offset + i;
                    var s = stripeOf[p];
                    var problem = Judge(bytes[i], p, stripes[s].Owner, ackedBefore[s], startedAfter[stripes[s].Owner]);
                    Assert.True(problem is null, $"read {offset}+{length}: byte at {p} (stripe {s} {stripes[s].Op}, writer {stripes[s].Owner}) is 0x{bytes[i]:x2}: {problem}");
                }
                count++;
            }
            return count;
        }
    }

    /// <summary>Null if <paramref name="b"/> is a byte a correct disk could return at <paramref name="position"/>, else why not.</summary>
    private static string? Judge(byte b, int position, int owner, int ackedBefore, int startedAfter)
    {
        var old = position < Prefilled ? OldValue : (byte)0;
        if (b == old)
        {
            return ackedBefore < 0 ? null : $"old content, but round {ackedBefore} was acknowledged before the read";
        }
        var (writer, round) = Decode(b);
        if (writer != owner)
        {
            return writer < 0 ? "neither old content nor any writer's value" : $"writer {writer}'s value in writer {owner}'s range";
        }
        if (round < ackedBefore)
        {
            return $"round {round}, but round {ackedBefore} was acknowledged before the read";
        }
        return round > startedAfter ? $"round {round} had not started" : null;
    }

    private static byte Value(int writer, int round) => (byte)(0x20 + writer * 16 + round);

    private static (int Writer, int Round) Decode(byte b)
        => b is >= 0x20 and < 0x20 + Writers * 16 && (b - 0x20) % 16 < Rounds ? ((b - 0x20) / 16, (b - 0x20) % 16) : (-1, -1);

    /// <summary>Contiguous stripes of 1..3000 bytes covering the region, each owned by a random writer.</summary>
    private static List<(WriteOp Op, int Owner)> MakeStripes(Random rng)
    {
        var stripes = new List<(WriteOp, int)>();
        for (var offset = 0; offset < Region;)
        {
            var length = Math.Min(rng.Next(1, 3001), Region - offset);
            stripes.Add((new WriteOp(offset, length), stripes.Count < Writers ? stripes.Count : rng.Next(Writers)));
            offset += length;
        }
        return stripes;
    }

    public void Dispose() => _scratch.Dispose();
}
