using QcowActors.Actors.Cluster;
using Xunit;

namespace QcowActors.Actors.Tests.Cluster;

public sealed class ImageOwnershipTests
{
    [Fact]
    public void No_lease_for_an_image_not_granted_here()
    {
        var ownership = new ImageOwnership();
        Assert.Null(ownership.TryAcquire("a"));
        Assert.False(ownership.Owns("a"));
        Assert.False(ownership.MayOpen("a"));
    }

    [Fact]
    public async Task Release_waits_for_leases_in_flight_and_refuses_new_ones()
    {
        var ownership = new ImageOwnership();
        ownership.Grant("a");
        var lease = ownership.TryAcquire("a");
        Assert.NotNull(lease);

        Task drained = ownership.BeginRelease("a");
        Assert.False(drained.IsCompleted);
        Assert.Null(ownership.TryAcquire("a"));
        Assert.False(ownership.Owns("a"));
        Assert.True(ownership.MayOpen("a")); // the request in flight may still need the file

        lease!.Dispose();
        lease.Dispose(); // twice is once
        await drained.WaitAsync(TimeSpan.FromSeconds(5));

        ownership.CloseForGood("a");
        Assert.False(ownership.MayOpen("a"));
        ownership.Revoke("a");
        Assert.Null(ownership.TryAcquire("a"));
    }

    [Fact]
    public void Release_without_requests_in_flight_completes_at_once()
    {
        var ownership = new ImageOwnership();
        ownership.Grant("a");
        using (ownership.TryAcquire("a")) { }
        Assert.True(ownership.BeginRelease("a").IsCompleted);
    }

    [Fact]
    public async Task Idle_means_no_lease_out_and_none_taken_or_returned_within_the_window()
    {
        var ownership = new ImageOwnership();
        ownership.Grant("a");
        var window = TimeSpan.FromMilliseconds(200);
        var lease = ownership.TryAcquire("a");
        await Task.Delay(3 * window);
        Assert.False(ownership.IsIdle("a", window), "a lease held past the window is not idle");
        Assert.False(ownership.TryBeginIdleRelease("a", window));
        lease!.Dispose();
        Assert.False(ownership.IsIdle("a", window), "a request that just ended counts as activity");
        Assert.False(ownership.TryBeginIdleRelease("a", window));
        await Task.Delay(window + TimeSpan.FromMilliseconds(50));
        Assert.True(ownership.IsIdle("a", window));
        Assert.True(ownership.TryBeginIdleRelease("a", window));
        Assert.Null(ownership.TryAcquire("a")); // released at that instant: no new lease
        Assert.True(ownership.BeginRelease("a").IsCompleted);
    }

    [Fact]
    public void Closing_for_good_revokes_the_leases_still_out()
    {
        var ownership = new ImageOwnership();
        ownership.Grant("a");
        using var lease = ownership.TryAcquire("a");
        Assert.False(ownership.BeginRelease("a").IsCompleted);
        ownership.CloseForGood("a");
        Assert.True(lease!.Revoked.IsCancellationRequested);
        Assert.False(ownership.MayOpen("a"));
    }

    [Fact]
    public async Task Concurrent_leases_and_a_release_never_leave_a_lease_after_the_drain()
    {
        var ownership = new ImageOwnership();
        ownership.Grant("a");
        int leasesAfterDrain = 0;
        var drainedAt = new TaskCompletionSource();
        using var stop = new CancellationTokenSource();
        // Plain threads: spinning pool tasks would starve the awaits below on a 2-core machine.
        var workers = Enumerable.Range(0, 3).Select(_ => new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var lease = ownership.TryAcquire("a");
                if (lease is not null && drainedAt.Task.IsCompleted) Interlocked.Increment(ref leasesAfterDrain);
            }
        })).ToArray();
        foreach (var w in workers) w.Start();
        await Task.Delay(50);
        await ownership.BeginRelease("a").WaitAsync(TimeSpan.FromSeconds(5));
        drainedAt.SetResult();
        await Task.Delay(50);
        stop.Cancel();
        foreach (var w in workers) w.Join();
        Assert.Equal(0, leasesAfterDrain);
    }
}
