using System.Diagnostics;
using System.Globalization;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Mixed load with a shadow model: 64 clients over 8 images read, write, zero and flush 512 B to
/// 4 MiB at a time for QCOWACTORS_LOAD_SECONDS (30 s here; scripts/load.sh runs 5 minutes). Each
/// client owns one region of one image, so its reads there are checked against the model while
/// the others hammer the rest; reads elsewhere only have to succeed. At the end every image is
/// closed, passes qemu-img check and equals its model. No answer may be a 5xx.
/// </summary>
[Collection(LoadCollection.Name)]
public sealed class LoadTests(ITestOutputHelper output)
{
    private const int MiB = 1024 * 1024;
    private const int Images = 8, Clients = 64, ClientsPerImage = Clients / Images;
    private const long ImageSize = 32L * MiB, Region = ImageSize / ClientsPerImage;
    private const int MaxLength = 4 * MiB;

    private sealed class Figures
    {
        public readonly Dictionary<string, List<double>> Latency = new() { ["read"] = [], ["write"] = [], ["zero"] = [], ["flush"] = [] };
        public long Bytes;
        public readonly List<string> Errors = [];
    }

    private static int Length(Random rng, long limit)
        => (int)Math.Min(limit, Math.Max(512, (long)Math.Pow(2, 9 + rng.NextDouble() * 13))); // 512 B .. 4 MiB, log-uniform

    [Fact]
    public async Task Sixty_four_clients_over_eight_images_no_5xx_and_every_image_equals_its_model()
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("QCOWACTORS_LOAD_SECONDS"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var s) ? s : 30;
        await using var server = await ServerProcess.StartAsync();
        var models = new DiskModel[Images];
        for (int i = 0; i < Images; i++)
        {
            await server.Api.CreateAsync($"load-{i}", ImageSize);
            models[i] = DiskModel.InMemory(ImageSize);
        }
        var rootRng = TestSeed.Create(output, 6464, "load");
        var seeds = Enumerable.Range(0, Clients).Select(_ => rootRng.Next()).ToArray();
        var figures = Enumerable.Range(0, Clients).Select(_ => new Figures()).ToArray();
        var stopAt = Stopwatch.StartNew();
        var clients = Enumerable.Range(0, Clients).Select(c => Task.Run(() => ClientAsync(server, models, c, new Random(seeds[c]), figures[c], stopAt, seconds)));
        await Task.WhenAll(clients);

        var all = new Figures();
        foreach (var f in figures)
        {
            all.Bytes += f.Bytes;
            all.Errors.AddRange(f.Errors);
            foreach (var (op, l) in f.Latency) all.Latency[op].AddRange(l);
        }
        long requests = all.Latency.Values.Sum(l => l.Count);
        output.WriteLine($"load: {Clients} clients, {Images} images of {ImageSize / MiB} MiB, {seconds} s: {requests} requests, "
            + $"{all.Bytes / (double)MiB:0} MiB moved, {all.Errors.Count} errors");
        foreach (var (op, l) in all.Latency)
        {
            l.Sort();
            string p(double q) => l.Count == 0 ? "-" : $"{l[(int)Math.Min(l.Count - 1, q * l.Count)]:0.0}";
            output.WriteLine($"load: {op,-5} {l.Count,8} requests  p50 {p(0.50)} ms  p99 {p(0.99)} ms");
        }
        foreach (var e in all.Errors.Take(20)) output.WriteLine($"load error: {e}");
        Assert.Empty(all.Errors);
        Assert.True(requests > Clients, $"the load ran ({requests} requests)");

        using var scratch = new TempDirectory("load-compare");
        for (int i = 0; i < Images; i++)
        {
            await server.Api.FlushAsync($"load-{i}");
            using (var close = await server.Client.PostAsync($"images/load-{i}/close", null))
                Assert.True(close.IsSuccessStatusCode, $"close load-{i}: {(int)close.StatusCode}");
            DiskAssert.CheckIsClean(server.ImagePath($"load-{i}"));
            DiskAssert.FileMatchesModel(server.ImagePath($"load-{i}"), models[i], scratch);
            models[i].Dispose();
        }
    }

    private static async Task ClientAsync(ServerProcess server, DiskModel[] models, int client, Random rng, Figures figures, Stopwatch clock, int seconds)
    {
        int image = client % Images;
        string name = $"load-{image}";
        long regionStart = client / Images * Region;
        var model = models[image];
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            int kind = rng.Next(100);
            string op = kind < 40 ? "read" : kind < 75 ? "write" : kind < 90 ? "zero" : "flush";
            var started = Stopwatch.GetTimestamp();
            try
            {
                switch (op)
                {
                    case "read" when rng.Next(2) == 0:
                    {
                        // Anywhere on the disk (others may be writing there): it only has to succeed.
                        int length = Length(rng, MaxLength);
                        long offset = rng.NextInt64(0, ImageSize - length);
                        figures.Bytes += (await server.Api.GetRangeAsync(name, offset, length)).Length;
                        break;
                    }
                    case "read":
                    {
                        int length = Length(rng, Region);
                        long offset = regionStart + rng.NextInt64(0, Region - length + 1);
                        var data = await server.Api.GetRangeAsync(name, offset, length);
                        figures.Bytes += data.Length;
                        if (model.Describe(offset, data) is { } wrong) figures.Errors.Add($"client {client}: {name} read back wrong: {wrong}");
                        break;
                    }
                    case "write":
                    {
                        int length = Length(rng, Region);
                        long offset = regionStart + rng.NextInt64(0, Region - length + 1);
                        var data = RandomWorkload.Data(rng, length);
                        await server.Api.PutAsync(name, offset, data, flush: rng.Next(4) == 0);
                        model.Write(offset, data);
                        figures.Bytes += length;
                        break;
                    }
                    case "zero":
                    {
                        int length = Length(rng, Region);
                        long offset = regionStart + rng.NextInt64(0, Region - length + 1);
                        await server.Api.ZeroAsync(name, offset, length);
                        model.Zero(offset, length);
                        break;
                    }
                    default:
                        await server.Api.FlushAsync(name);
                        break;
                }
            }
            catch (Exception e)
            {
                figures.Errors.Add($"client {client}: {op} on {name}: {e.Message}");
                if (figures.Errors.Count > 5) return;
            }
            figures.Latency[op].Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
    }
}

/// <summary>The load runs alone: its latencies are the server's, not the other tests'.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LoadCollection
{
    public const string Name = "load";
}
