namespace QcowActors.Cluster.Tests;

/// <summary>The longest time one image went without an acknowledged write, and between which acknowledgements.</summary>
internal sealed record Pause(string Image, double Seconds, long FromNs, long ToNs);

/// <summary>Questions the scenarios ask about the recorded attempts.</summary>
internal static class LoadAnalysis
{
    /// <summary>The node (X-QcowActors-Node) that executed the last acknowledged write of each image finished by <paramref name="atNs"/>.</summary>
    public static Dictionary<string, string> OwnersAt(IReadOnlyList<WriteAttempt> attempts, long atNs)
        => attempts.Where(a => a.IsAcknowledged && a.EndNs <= atNs && a.ExecutedBy is not null)
            .GroupBy(a => a.Image)
            .ToDictionary(g => g.Key, g => g.MaxBy(a => a.EndNs)!.ExecutedBy!);

    /// <summary>The first acknowledged write of <paramref name="image"/> that started at or after <paramref name="fromNs"/> and was executed by a node other than <paramref name="exceptNode"/>.</summary>
    public static WriteAttempt? FirstAcknowledgedElsewhere(IReadOnlyList<WriteAttempt> attempts, string image, long fromNs, string exceptNode)
        => attempts.Where(a => a.Image == image && a.IsAcknowledged && a.StartNs >= fromNs && a.ExecutedBy != exceptNode).MinBy(a => a.EndNs);

    /// <summary>The longest gap between consecutive acknowledgements of any of <paramref name="images"/> (gaps ending in [fromNs, toNs]).</summary>
    public static Pause? LongestPause(IReadOnlyList<WriteAttempt> attempts, IEnumerable<string> images, long fromNs, long toNs)
    {
        Pause? longest = null;
        foreach (var image in images)
        {
            var acks = attempts.Where(a => a.Image == image && a.IsAcknowledged).Select(a => a.EndNs).Order().ToList();
            for (var i = 1; i < acks.Count; i++)
            {
                if (acks[i] < fromNs || acks[i] > toNs)
                {
                    continue;
                }
                var seconds = Monotonic.Seconds(acks[i - 1], acks[i]);
                if (longest is null || seconds > longest.Seconds)
                {
                    longest = new Pause(image, seconds, acks[i - 1], acks[i]);
                }
            }
        }
        return longest;
    }

    public static IReadOnlyList<WriteAttempt> Failures(IReadOnlyList<WriteAttempt> attempts, IEnumerable<string> images)
    {
        var set = images.ToHashSet();
        return attempts.Where(a => a.IsFailure && set.Contains(a.Image)).ToList();
    }

    /// <summary>The attempts on <paramref name="image"/> in flight at some time in [fromNs, toNs].</summary>
    public static IReadOnlyList<WriteAttempt> During(IReadOnlyList<WriteAttempt> attempts, string image, long fromNs, long toNs)
        => attempts.Where(a => a.Image == image && a.StartNs <= toNs && a.EndNs >= fromNs).OrderBy(a => a.StartNs).ToList();

    /// <summary>Number of images per executing node, from <see cref="OwnersAt"/>.</summary>
    public static string Distribution(IReadOnlyDictionary<string, string> owners)
        => string.Join(", ", owners.GroupBy(o => o.Value).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key[(g.Key.LastIndexOf(':') + 1)..]}: {string.Join("+", g.Select(o => o.Key).Order(StringComparer.Ordinal))}"));

    /// <summary>Every image has at least <paramref name="count"/> acknowledged writes.</summary>
    public static bool EachAcknowledged(IReadOnlyList<WriteAttempt> attempts, IEnumerable<string> images, int count)
        => images.All(i => attempts.Count(a => a.Image == i && a.IsAcknowledged) >= count);
}
