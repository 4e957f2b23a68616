namespace QcowActors.Cluster.Tests;

/// <summary>
/// SIGTERM of the node owning the most images, under load: not one write fails, no image waits
/// longer than the pause bound, the node exits with 0 within the bound, and its images reopen on
/// their new owner without the repair that an image not closed cleanly gets.
/// </summary>
internal static class GracefulStopScenario
{
    private sealed record Outcome(
        NodeProcess Victim,
        IReadOnlyList<string> VictimImages,
        IReadOnlyList<NodeProcess> Survivors,
        long Terminated,
        int? ExitCode,
        string? ExitProblem,
        long LoadStarted,
        long End,
        IReadOnlyList<WriteAttempt> Attempts);

    public static async Task<IReadOnlyList<string>> RunAsync(ClusterScenario s)
    {
        var outcome = await StopOwnerUnderLoadAsync(s);
        var problems = Judge(s, outcome);
        problems.AddRange(await s.ReadBackAsync(outcome.Survivors));
        return problems;
    }

    private static async Task<Outcome> StopOwnerUnderLoadAsync(ClusterScenario s)
    {
        var bounds = ClusterScenario.Bounds;
        await using var load = await s.StartLoadAsync();
        var (victim, victimImages) = s.PickOwner(load);
        var survivors = s.Cluster.Running.Where(n => n.Pid != victim.Pid).ToList();
        s.Log($"graceful: SIGTERM {victim}, owner of {string.Join(", ", victimImages)}");

        load.MarkLeaving(victim);
        var terminated = victim.Signal("TERM");
        int? exitCode = null;
        string? exitProblem = null;
        try
        {
            exitCode = await victim.Server.WaitForExitAsync(bounds.GracefulExit + TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException e)
        {
            exitProblem = e.Message;
            victim.Kill();
        }
        await load.WaitUntilAsync(
            a => victimImages.All(i => LoadAnalysis.FirstAcknowledgedElsewhere(a, i, terminated, victim.Address) is not null),
            TimeSpan.FromSeconds(20));
        await Task.Delay(TimeSpan.FromSeconds(3));
        await load.StopAsync();
        s.SaveAttempts(load, "graceful");
        return new Outcome(victim, victimImages, survivors, terminated, exitCode, exitProblem, load.StartedNs, Monotonic.Now, load.Attempts);
    }

    private static List<string> Judge(ClusterScenario s, Outcome o)
    {
        var bounds = ClusterScenario.Bounds;
        var problems = new List<string>();
        var exitSeconds = Monotonic.Seconds(o.Terminated, o.Victim.EndNs ?? o.End);
        var failures = o.Attempts.Where(a => a.IsFailure).ToList();
        var pause = LoadAnalysis.LongestPause(o.Attempts, s.ImageNames, o.LoadStarted, o.End);
        var redirected = o.Attempts.Where(a => a.Outcome == AttemptOutcome.Redirected).ToList();
        s.Figure($"graceful: SIGTERM -> exit code {o.ExitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"} after {ClusterScenario.Seconds(exitSeconds)}; " +
                 $"{failures.Count} failed writes; longest pause {ClusterScenario.Seconds(pause?.Seconds ?? 0)} ({pause?.Image}, " +
                 $"{ClusterScenario.Seconds(Monotonic.Seconds(o.Terminated, pause?.FromNs ?? o.Terminated))} after SIGTERM); " +
                 $"{redirected.Count} writes re-sent after the stopping node refused them; {o.Attempts.Count(a => a.IsAcknowledged)} acknowledged");
        if (redirected.Count > 0)
        {
            s.Log($"re-sent writes (the stopping node broke or refused the connection):{Environment.NewLine}  {ClusterScenario.List(redirected)}");
        }
        foreach (var image in o.VictimImages)
        {
            problems.AddRange(JudgeHandOff(s, o, image));
        }
        if (o.ExitProblem is not null)
        {
            problems.Add(o.ExitProblem);
        }
        else if (o.ExitCode != 0)
        {
            problems.Add($"the stopped node exited with code {o.ExitCode}, expected 0");
        }
        if (exitSeconds > bounds.GracefulExit.TotalSeconds)
        {
            problems.Add($"the stopped node took {ClusterScenario.Seconds(exitSeconds)} to exit (bound {bounds.GracefulExit.TotalSeconds} s)");
        }
        if (failures.Count > 0)
        {
            problems.Add($"{failures.Count} writes failed during a graceful hand-off:{Environment.NewLine}  {ClusterScenario.List(failures)}");
        }
        if (pause is not null && pause.Seconds > bounds.MaxPause.TotalSeconds)
        {
            problems.Add($"{pause.Image} went {ClusterScenario.Seconds(pause.Seconds)} without an acknowledged write (bound {bounds.MaxPause.TotalSeconds} s), " +
                         $"from {ClusterScenario.Seconds(Monotonic.Seconds(o.Terminated, pause.FromNs))} to {ClusterScenario.Seconds(Monotonic.Seconds(o.Terminated, pause.ToNs))} after SIGTERM; " +
                         ClusterScenario.DescribePause(o.Attempts, pause));
        }
        return problems;
    }

    /// <summary>The stopping node closed the image, another opened it and took writes, and nobody repaired it.</summary>
    private static IEnumerable<string> JudgeHandOff(ClusterScenario s, Outcome o, string image)
    {
        var moved = LoadAnalysis.FirstAcknowledgedElsewhere(o.Attempts, image, o.Terminated, o.Victim.Address);
        var reopened = s.Ledger.FirstOpenAfter(image, o.Terminated, o.Victim.Pid);
        var closed = s.Ledger.Events.FirstOrDefault(e => !e.IsOpen && e.Image == image && e.Pid == o.Victim.Pid && e.Mono >= o.Terminated);
        string After(long? ns) => ns is { } t ? ClusterScenario.Seconds(Monotonic.Seconds(o.Terminated, t)) : "never";
        s.Figure($"graceful: {image}: closed by the stopping node {After(closed?.Mono)}, reopened by {reopened?.Node ?? "nobody"} {After(reopened?.Mono)}, " +
                 $"first write there acknowledged {After(moved?.EndNs)} after SIGTERM");
        if (moved is null || reopened is null)
        {
            yield return $"{image} was not written through another node after its owner stopped";
        }
        if (closed is null)
        {
            yield return $"the stopping node (pid {o.Victim.Pid}) never logged closing {image}";
        }
        var repairs = s.RepairLines(image, o.Terminated);
        if (repairs.Count > 0)
        {
            yield return $"{image} was handed off gracefully but repaired on reopen, as if not closed cleanly:{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", repairs)}";
        }
    }
}
