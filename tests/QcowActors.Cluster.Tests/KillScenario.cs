namespace QcowActors.Cluster.Tests;

/// <summary>
/// kill -9 of the node owning the most images, under load: its images take writes again through
/// the survivors within the bound, the survivors' images do not notice (no failure, no pause over
/// the bound), the dead owner's images are repaired when reopened, and every acknowledged write
/// reads back through both survivors.
/// </summary>
internal static class KillScenario
{
    private sealed record Outcome(
        NodeProcess Victim,
        IReadOnlyList<string> VictimImages,
        IReadOnlyList<string> SurvivorImages,
        IReadOnlyList<NodeProcess> Survivors,
        long Killed,
        long Measured,
        long End,
        IReadOnlyList<WriteAttempt> Attempts);

    /// <param name="rejoined">A node restarted just before: the kill waits until the images stop moving to it (see <see cref="ClusterScenario.SettleAsync"/>).</param>
    public static async Task<IReadOnlyList<string>> RunAsync(ClusterScenario s, string label, NodeProcess? rejoined)
    {
        var outcome = await KillOwnerUnderLoadAsync(s, label, rejoined);
        var problems = JudgeFailover(s, label, outcome);
        problems.AddRange(JudgeSurvivors(s, label, outcome));
        problems.AddRange(await s.ReadBackAsync(outcome.Survivors));
        return problems;
    }

    private static async Task<Outcome> KillOwnerUnderLoadAsync(ClusterScenario s, string label, NodeProcess? rejoined)
    {
        var bounds = ClusterScenario.Bounds;
        await using var load = await s.StartLoadAsync();
        var measured = rejoined is null ? load.StartedNs : await s.SettleAsync(load, rejoined);
        var (victim, victimImages) = s.PickOwner(load);
        var survivors = s.Cluster.Running.Where(n => n.Pid != victim.Pid).ToList();
        s.Log($"{label}: kill -9 {victim}, owner of {string.Join(", ", victimImages)}");

        load.MarkLeaving(victim);
        var killed = victim.Kill();
        await load.WaitUntilAsync(
            a => victimImages.All(i => LoadAnalysis.FirstAcknowledgedElsewhere(a, i, killed, victim.Address) is not null),
            bounds.KillFailover + TimeSpan.FromSeconds(15));
        await Task.Delay(TimeSpan.FromSeconds(3));
        await load.StopAsync();
        s.SaveAttempts(load, label);
        return new Outcome(victim, victimImages, s.ImageNames.Except(victimImages).ToList(), survivors, killed, measured, Monotonic.Now, load.Attempts);
    }

    /// <summary>Each of the dead owner's images was written through a survivor within the bound, after a repair on open.</summary>
    private static List<string> JudgeFailover(ClusterScenario s, string label, Outcome o)
    {
        var bounds = ClusterScenario.Bounds;
        var problems = new List<string>();
        foreach (var image in o.VictimImages)
        {
            var first = LoadAnalysis.FirstAcknowledgedElsewhere(o.Attempts, image, o.Killed, o.Victim.Address);
            if (first is null)
            {
                s.Figure($"{label}: {image} took no write after the kill within {bounds.KillFailover.TotalSeconds + 15} s");
                problems.Add($"{image} was never written again after its owner was killed");
                continue;
            }
            var seconds = Monotonic.Seconds(o.Killed, first.EndNs);
            s.Figure($"{label}: failover of {image}: writable again {ClusterScenario.Seconds(seconds)} after kill -9 (executed by node{s.Cluster.ByAddress(first.ExecutedBy)?.Index}, sent to node{first.SentToIndex})");
            if (seconds > bounds.KillFailover.TotalSeconds)
            {
                problems.Add($"{image} took {ClusterScenario.Seconds(seconds)} to accept writes again (bound {bounds.KillFailover.TotalSeconds} s)");
            }
            var repairs = s.RepairLines(image, o.Killed);
            s.Log($"{image} reopened after the kill with {repairs.Count} repair line(s){(repairs.Count > 0 ? ": " + repairs[0] : "")}");
            if (repairs.Count == 0)
            {
                problems.Add($"{image} was reopened after its owner was killed without the repair line 'was not closed cleanly' in any node's log");
            }
        }
        return problems;
    }

    /// <summary>The survivors' own images: no failed write and no pause over the bound.</summary>
    private static List<string> JudgeSurvivors(ClusterScenario s, string label, Outcome o)
    {
        var bounds = ClusterScenario.Bounds;
        var problems = new List<string>();
        var survivorFailures = LoadAnalysis.Failures(o.Attempts.Where(a => a.StartNs >= o.Measured).ToList(), o.SurvivorImages);
        var pause = LoadAnalysis.LongestPause(o.Attempts, o.SurvivorImages, o.Measured, o.End);
        var victimFailures = LoadAnalysis.Failures(o.Attempts, o.VictimImages);
        s.Figure($"{label}: survivors' images {string.Join(", ", o.SurvivorImages)}: {survivorFailures.Count} failed writes, longest pause {ClusterScenario.Seconds(pause?.Seconds ?? 0)} ({pause?.Image}); " +
                 $"victim's images: {victimFailures.Count} failed attempts while failing over; {o.Attempts.Count(a => a.Outcome == AttemptOutcome.Redirected)} writes re-sent after the killed node refused them; " +
                 $"{o.Attempts.Count(a => a.IsAcknowledged)} acknowledged");
        if (victimFailures.Count > 0)
        {
            var byAnswer = victimFailures.GroupBy(f => f.Status == 0 ? f.Error?.Split(':')[0] : f.Status.ToString(System.Globalization.CultureInfo.InvariantCulture));
            s.Log($"failed attempts on the victim's images (allowed during failover), by answer: {string.Join("; ", byAnswer.Select(g => $"{g.Key} x{g.Count()}"))}");
        }
        if (survivorFailures.Count > 0)
        {
            problems.Add($"{survivorFailures.Count} writes to images owned by survivors failed:{Environment.NewLine}  {ClusterScenario.List(survivorFailures)}");
        }
        if (pause is not null && pause.Seconds > bounds.MaxPause.TotalSeconds)
        {
            problems.Add($"{pause.Image} (owned by a survivor) went {ClusterScenario.Seconds(pause.Seconds)} without an acknowledged write, " +
                         $"from {ClusterScenario.Seconds(Monotonic.Seconds(o.Killed, pause.FromNs))} to {ClusterScenario.Seconds(Monotonic.Seconds(o.Killed, pause.ToNs))} after the kill " +
                         $"(bound {bounds.MaxPause.TotalSeconds} s); {ClusterScenario.DescribePause(o.Attempts, pause)}");
        }
        return problems;
    }
}
