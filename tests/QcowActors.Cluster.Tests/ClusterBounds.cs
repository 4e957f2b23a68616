using System.Globalization;

namespace QcowActors.Cluster.Tests;

/// <summary>
/// The limits the scenarios assert. scripts/cluster-loopback.sh sets CLUSTER_STRICT=1 for the
/// figures the cluster is meant to reach on a quiet 2-core machine; the default (CI) bounds are
/// twice as loose, so a busy runner does not turn scheduling noise into failures.
/// </summary>
internal sealed record ClusterBounds(
    string Name,
    TimeSpan KillFailover,
    TimeSpan MaxPause,
    TimeSpan ZombieExitAfterResume,
    TimeSpan ZombieServedElsewhere,
    TimeSpan GracefulExit)
{
    public const string StrictVariable = "CLUSTER_STRICT";

    public static readonly ClusterBounds Script = new(
        "strict (CLUSTER_STRICT=1)",
        KillFailover: TimeSpan.FromSeconds(30),
        MaxPause: TimeSpan.FromSeconds(2),
        ZombieExitAfterResume: TimeSpan.FromSeconds(15),
        ZombieServedElsewhere: TimeSpan.FromSeconds(45),
        GracefulExit: TimeSpan.FromSeconds(15));

    public static readonly ClusterBounds Ci = new(
        "CI (twice the script's)",
        KillFailover: Script.KillFailover * 2,
        MaxPause: Script.MaxPause * 2,
        ZombieExitAfterResume: Script.ZombieExitAfterResume * 2,
        ZombieServedElsewhere: Script.ZombieServedElsewhere * 2,
        GracefulExit: Script.GracefulExit * 2);

    public static ClusterBounds Current { get; } =
        Environment.GetEnvironmentVariable(StrictVariable) is { } v && v.Trim() is "1" or "true" or "yes" ? Script : Ci;

    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture,
            $"{Name}: kill failover <= {KillFailover.TotalSeconds} s, pause <= {MaxPause.TotalSeconds} s, zombie exit <= {ZombieExitAfterResume.TotalSeconds} s after SIGCONT, " +
            $"zombie's images served elsewhere <= {ZombieServedElsewhere.TotalSeconds} s after SIGSTOP, graceful exit <= {GracefulExit.TotalSeconds} s");
}
