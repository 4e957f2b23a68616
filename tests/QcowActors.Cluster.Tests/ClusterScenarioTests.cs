using System.Diagnostics;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.Cluster.Tests;

/// <summary>
/// The cluster's promises under failure, on 3 loopback nodes sharing one store (scenarios run in
/// order on one cluster; a node killed or stopped by one scenario is started again, on its old
/// cluster address, by the next that needs three). The bounds are <see cref="ClusterBounds.Current"/>.
/// Remoting runs over mutual TLS (<see cref="ClusterFixture.Tls"/>), as it must on a real network.
/// </summary>
[Collection(ClusterCollection.Name)]
[TestCaseOrderer(StepOrderer.TypeName, StepOrderer.AssemblyName)]
public sealed class ClusterScenarioTests(ClusterFixture fixture, ITestOutputHelper output)
{
    private readonly ClusterScenario _main = new(fixture.Main, fixture.MainImages, output, fixture);

    [Fact, Step(1)]
    public async Task Every_node_answers_for_every_image_and_the_owner_executes_it()
    {
        _main.Log($"bounds: {ClusterBounds.Current}; remoting TLS: {fixture.Tls}");
        _main.Figure($"seed-node cluster of {ClusterFixture.NodeCount} formed in {ClusterScenario.Seconds(fixture.MainFormedIn.TotalSeconds)} (all nodes ready)");
        await EnsureThreeNodesAsync();
        AssertNone(await ForwardingScenario.RunAsync(_main));
    }

    [Fact, Step(2)]
    public async Task Graceful_stop_of_an_owner_hands_its_images_off_without_a_failed_write()
    {
        await EnsureThreeNodesAsync();
        AssertNone(await GracefulStopScenario.RunAsync(_main));
    }

    [Fact, Step(3)]
    public async Task Kill_of_an_owner_moves_its_images_to_the_survivors_without_losing_an_acknowledged_write()
    {
        var restarted = await EnsureThreeNodesAsync();
        AssertNone(await KillScenario.RunAsync(_main, "kill -9 (seed nodes)", restarted.FirstOrDefault()));
    }

    [Fact, Step(4)]
    public async Task A_suspended_owner_keeps_its_images_until_it_resumes_and_leaves()
    {
        await EnsureThreeNodesAsync();
        AssertNone(await ZombieScenario.RunAsync(_main));
    }

    [Fact, Step(5)]
    public async Task Images_pass_qemu_img_check_after_the_cluster_stops()
    {
        var watch = Stopwatch.StartNew();
        var stopped = await fixture.Main.StopAllAsync(TimeSpan.FromSeconds(60));
        _main.Figure($"stop of the seed-node cluster: {string.Join(", ", stopped.Select(s => $"node{s.Node.Index} exit {s.ExitCode}"))} in {ClusterScenario.Seconds(watch.Elapsed.TotalSeconds)}");
        AssertNone(_main.CheckStoreOffline());
    }

    [Fact, Step(6)]
    public async Task Kill_of_an_owner_in_a_cluster_formed_by_config_discovery_moves_its_images_to_the_survivors()
    {
        // The seed-node cluster is done: stop it (if an earlier step did not), so the two do not share the 2 cores.
        await fixture.Main.StopAllAsync(TimeSpan.FromSeconds(60));
        var watch = Stopwatch.StartNew();
        var cluster = await fixture.StartClusterAsync("discovery", ClusterFormation.ConfigDiscovery);
        _main.Figure($"config-discovery cluster of {ClusterFixture.NodeCount} formed in {ClusterScenario.Seconds(watch.Elapsed.TotalSeconds)} (all nodes ready)");
        var images = await ClusterFixture.CreateImagesAsync(cluster, "k8s", seed: 2000);
        var scenario = new ClusterScenario(cluster, images, output, fixture);
        var problems = new List<string>(await KillScenario.RunAsync(scenario, "kill -9 (config discovery)", rejoined: null));
        var stopped = await cluster.StopAllAsync(TimeSpan.FromSeconds(60));
        scenario.Log($"stop: {string.Join(", ", stopped.Select(s => $"node{s.Node.Index} exit {s.ExitCode}"))}");
        problems.AddRange(scenario.CheckStoreOffline());
        AssertNone(problems);
    }

    [Fact, Step(7)]
    public void No_two_processes_ever_held_one_image_open_at_once()
    {
        var anomalies = new List<string>();
        var intervals = fixture.Ledger.Intervals(Monotonic.Now, anomalies);
        var overlaps = WriterLedger.Overlaps(intervals);
        var handedOver = intervals.GroupBy(i => i.Image).Count(g => g.Select(i => i.Pid).Distinct().Count() > 1);
        var unclosed = intervals.Where(i => i.EndedBy != "close").ToList();
        _main.Figure($"writers: {intervals.Count} holds of {intervals.Select(i => i.Image).Distinct().Count()} images by {intervals.Select(i => i.Pid).Distinct().Count()} processes; " +
                     $"{handedOver} images held by more than one process over the run; {unclosed.Count} holds ended without a close line " +
                     $"({string.Join(", ", unclosed.GroupBy(i => i.EndedBy).Select(g => $"{g.Key} x{g.Count()}"))}); {overlaps.Count} overlaps");
        foreach (var figure in fixture.Figures)
        {
            output.WriteLine("SUMMARY " + figure);
        }
        Assert.True(handedOver > 0, "No image was ever opened by two processes: this check needs the scenarios before it (run the whole class).");
        Assert.True(overlaps.Count == 0, "Two processes held one image at once:" + Environment.NewLine + string.Join(Environment.NewLine, overlaps.Select(o =>
            $"{o.A.Image}: pid {o.A.Pid} ({o.A.Node}) held it [{o.A.Open}, {o.A.End}] ({o.A.EndedBy}), pid {o.B.Pid} ({o.B.Node}) [{o.B.Open}, {o.B.End}] ({o.B.EndedBy}): " +
            $"{(Math.Min(o.A.End, o.B.End) - Math.Max(o.A.Open, o.B.Open)) / 1e6:F1} ms together")));
        Assert.True(anomalies.Count == 0, string.Join(Environment.NewLine, anomalies));
    }

    /// <summary>Starts the nodes an earlier scenario killed or stopped, and waits until all three are ready.</summary>
    private async Task<IReadOnlyList<NodeProcess>> EnsureThreeNodesAsync()
    {
        var watch = Stopwatch.StartNew();
        var restarted = await fixture.Main.EnsureAllUpAsync();
        if (restarted.Count > 0)
        {
            _main.Figure($"restart of {string.Join(", ", restarted)} on the same cluster address: all {ClusterFixture.NodeCount} nodes ready after {ClusterScenario.Seconds(watch.Elapsed.TotalSeconds)}");
        }
        return restarted;
    }

    private void AssertNone(IReadOnlyList<string> problems)
        => Assert.True(problems.Count == 0, $"{string.Join(Environment.NewLine, problems)}{Environment.NewLine}Node logs and per-write CSVs: {fixture.LogDirectory}");
}
