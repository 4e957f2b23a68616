using System.Diagnostics;

namespace QcowActors.Actors.Io;

/// <summary>
/// One line on standard output per image file opened or closed by this process, with the node,
/// the pid and CLOCK_MONOTONIC in nanoseconds (Stopwatch on Linux; the same clock in every process
/// of a host), so the logs of several nodes sharing a store can be merged to show that no two
/// processes ever held one image at once:
/// <c>qcow-writer open image=NAME node=ADDRESS pid=PID mono=NS</c> (and <c>close</c>).
/// Opens are logged after the lock is taken and closes before it is released.
/// </summary>
public static class WriterLog
{
    private static readonly int s_pid = Environment.ProcessId;
    private static readonly double s_nsPerTick = 1e9 / Stopwatch.Frequency;

    /// <summary>This node's cluster address, once known ("local" before, and in tests without a cluster).</summary>
    public static string Node { get; set; } = "local";

    public static bool Enabled { get; set; }

    internal static void Opened(string path) => Write("open", path);

    internal static void Closing(string path) => Write("close", path);

    private static void Write(string what, string path)
    {
        if (!Enabled) return;
        long ns = (long)(Stopwatch.GetTimestamp() * s_nsPerTick);
        string image = Path.GetFileNameWithoutExtension(path);
        Console.Out.WriteLine($"qcow-writer {what} image={image} node={Node} pid={s_pid} mono={ns}");
    }
}
