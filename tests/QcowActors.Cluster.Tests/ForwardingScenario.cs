namespace QcowActors.Cluster.Tests;

/// <summary>
/// Every node answers for every image, and X-QcowActors-Node names the node that executed the
/// request: the image's owner, the process that holds its file open (per the qcow-writer lines),
/// whatever node the request was sent to.
/// </summary>
internal static class ForwardingScenario
{
    public static async Task<IReadOnlyList<string>> RunAsync(ClusterScenario s)
    {
        var nodes = s.Cluster.Running;
        var images = s.ImageNames;
        await using var load = new LoadClient(s.Images, nodes);
        load.Start();
        var everyPair = await load.WaitUntilAsync(
            a => images.All(i => nodes.All(n => a.Any(w => w.Image == i && w.SentToPid == n.Pid && w.IsAcknowledged))),
            TimeSpan.FromSeconds(30));
        await load.StopAsync();
        var attempts = load.Attempts;
        s.SaveAttempts(load, "forwarding");

        var problems = new List<string>();
        var acks = attempts.Where(a => a.IsAcknowledged).ToList();
        if (!everyPair)
        {
            var missing = images.SelectMany(i => nodes.Where(n => !acks.Any(w => w.Image == i && w.SentToPid == n.Pid)).Select(n => $"{i} via node{n.Index}"));
            problems.Add($"no acknowledged write for {string.Join(", ", missing)}");
        }
        var failures = attempts.Where(a => a.IsFailure).ToList();
        if (failures.Count > 0)
        {
            problems.Add($"{failures.Count} writes failed on a healthy cluster:{Environment.NewLine}  {ClusterScenario.List(failures)}");
        }
        foreach (var image in images)
        {
            problems.AddRange(CheckExecutor(s, image, acks.Where(a => a.Image == image).ToList()));
        }
        var forwarded = acks.Count(a => a.ExecutedBy != a.SentTo);
        s.Figure($"forwarding: {acks.Count} acknowledged writes, {forwarded} of them executed by a node other than the one they were sent to");
        if (forwarded == 0)
        {
            problems.Add("no response came from a node other than the one the request was sent to: nothing was forwarded");
        }
        problems.AddRange(await s.ReadBackAsync(nodes));
        return problems;
    }

    /// <summary>One node executed every write of the image, and it is the process that opened the image's file.</summary>
    private static IEnumerable<string> CheckExecutor(ClusterScenario s, string image, IReadOnlyList<WriteAttempt> acks)
    {
        var executors = acks.Select(a => a.ExecutedBy ?? "(no X-QcowActors-Node header)").Distinct().ToList();
        if (executors.Count != 1)
        {
            yield return $"{image} was executed by {executors.Count} nodes: {string.Join(", ", executors)}";
            yield break;
        }
        var owner = s.Cluster.ByAddress(executors[0]);
        if (owner is null)
        {
            yield return $"{image} was executed by {executors[0]}, which is no node of this cluster";
            yield break;
        }
        var clusterPids = s.Cluster.Incarnations.Select(n => n.Pid).ToHashSet();
        var openers = s.Ledger.Events.Where(e => e.IsOpen && e.Image == image && clusterPids.Contains(e.Pid)).Select(e => e.Pid).Distinct().ToList();
        if (openers.Count != 1 || openers[0] != owner.Pid)
        {
            yield return $"{image}: responses name node{owner.Index} (pid {owner.Pid}) but the image was opened by pid(s) {string.Join(", ", openers)}";
        }
        s.Log($"{image}: executed by node{owner.Index} for requests sent to {string.Join(", ", acks.Select(a => a.SentToIndex).Distinct().Order().Select(i => $"node{i}"))}");
    }
}
