using System.Globalization;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Randomized tests use a fixed seed, printed in the test output; QCOWACTORS_SEED overrides it to
/// explore or to replay another run.
/// </summary>
internal static class TestSeed
{
    public static Random Create(ITestOutputHelper output, int fixedSeed, string what)
    {
        var overridden = Environment.GetEnvironmentVariable("QCOWACTORS_SEED");
        var seed = int.TryParse(overridden, NumberStyles.Integer, CultureInfo.InvariantCulture, out var s) ? s : fixedSeed;
        output.WriteLine($"{what}: seed {seed} (replay with QCOWACTORS_SEED={seed})");
        return new Random(seed);
    }
}
