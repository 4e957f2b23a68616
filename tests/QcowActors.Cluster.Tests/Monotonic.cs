using System.Diagnostics;

namespace QcowActors.Cluster.Tests;

/// <summary>
/// CLOCK_MONOTONIC in nanoseconds: Stopwatch on Linux, and the clock of the servers' qcow-writer
/// lines (mono=NS), so the test's own timestamps and the nodes' logs can be put on one time line.
/// </summary>
internal static class Monotonic
{
    private static readonly double NsPerTick = 1e9 / Stopwatch.Frequency;

    public static long Now => FromTimestamp(Stopwatch.GetTimestamp());

    public static long FromTimestamp(long stopwatchTimestamp) => (long)(stopwatchTimestamp * NsPerTick);

    public static double Seconds(long fromNs, long toNs) => (toNs - fromNs) / 1e9;

    public static long Ns(TimeSpan span) => span.Ticks * 100;
}
