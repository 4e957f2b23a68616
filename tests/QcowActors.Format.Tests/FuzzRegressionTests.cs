using System.Diagnostics;
using QcowActors.Fuzz;
using QcowActors.Testing;

namespace QcowActors.Format.Tests;

/// <summary>
/// Replays every input under FuzzRegressions/ — the seeds scripts/fuzz.sh starts afl from, and each
/// crash afl found (kept after its fix) — through the fuzz target itself (ImageParserTarget: header,
/// validation, layout, snapshot table, L2 entries, compressed clusters, then the engine's open). Only
/// the parser's refusals may come out, and each input must finish within <see cref="TimeLimit"/>.
/// </summary>
public class FuzzRegressionTests
{
    private static readonly TimeSpan TimeLimit = TimeSpan.FromSeconds(2);

    private static readonly Lazy<Task> WarmUp = new(() => Task.Run(() => ImageParserTarget.Run(File.ReadAllBytes(Path.Combine(Directory, "seeds", "seed-snapshot")))));

    private static string Directory => Path.Combine(RepositoryLayout.Root, "tests", "QcowActors.Format.Tests", "FuzzRegressions");

    public static TheoryData<string> Inputs()
    {
        var data = new TheoryData<string>();
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            if (Path.GetFileName(file) == "README.md") continue;
            data.Add(Path.GetRelativePath(Directory, file));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public async Task Input_is_parsed_or_refused_in_bounded_time(string input)
    {
        var bytes = File.ReadAllBytes(Path.Combine(Directory, input));
        await WarmUp.Value; // JIT and the engine's types load once, outside any input's time
        Assert.Null(await Replay(() => ImageParserTarget.Run(bytes)));
    }

    [Fact]
    public void The_seeds_are_there()
    {
        // fuzz.sh's seeds: v2, v3, refcount_bits=1, extended L2, a snapshot, zlib and zstd compressed, an overlay.
        var seeds = System.IO.Directory.GetFiles(Path.Combine(Directory, "seeds"));
        Assert.True(seeds.Length >= 8, $"{seeds.Length} seed inputs");
    }

    [Fact]
    public async Task An_escaping_exception_or_a_hang_is_a_failure()
    {
        Assert.Contains("IndexOutOfRangeException", await Replay(() => throw new IndexOutOfRangeException()));
        Assert.Contains("hang", await Replay(() => Thread.Sleep(TimeLimit * 2)));
        Assert.Null(await Replay(() => { }));
    }

    /// <summary>Runs the target off the test's thread: null, or what escaped, or that it overran the limit.</summary>
    private static async Task<string?> Replay(Action run)
    {
        var watch = Stopwatch.StartNew();
        var task = Task.Run(run);
        if (await Task.WhenAny(task, Task.Delay(TimeLimit)) != task)
            return $"no answer within {TimeLimit.TotalSeconds} s (a hang)";
        watch.Stop();
        if (task.Exception is { } e)
            return e.InnerException?.ToString() ?? e.ToString();
        return watch.Elapsed > TimeLimit ? $"took {watch.Elapsed.TotalSeconds:0.00} s" : null;
    }
}
