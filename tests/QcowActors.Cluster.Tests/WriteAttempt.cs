namespace QcowActors.Cluster.Tests;

internal enum AttemptOutcome
{
    /// <summary>2xx: the write is durable.</summary>
    Acknowledged,

    /// <summary>A non-2xx answer, a timeout, or a broken connection to a node that was not leaving.</summary>
    Failed,

    /// <summary>The connection to a node that was killed or is stopping failed: the node left the rotation and the write went to another (not a failure).</summary>
    Redirected,
}

/// <summary>One PUT of the load: where it went, who executed it (X-QcowActors-Node), how it ended, when.</summary>
internal sealed record WriteAttempt(
    string Image,
    long Sequence,
    long Offset,
    int SentToIndex,
    string SentTo,
    int SentToPid,
    string? ExecutedBy,
    int Status,
    AttemptOutcome Outcome,
    string? Error,
    long StartNs,
    long EndNs)
{
    public bool IsAcknowledged => Outcome == AttemptOutcome.Acknowledged;

    public bool IsFailure => Outcome == AttemptOutcome.Failed;

    public double Seconds => (EndNs - StartNs) / 1e9;

    public override string ToString()
        => $"{Image} #{Sequence} @{Offset} -> node{SentToIndex} (pid {SentToPid}): {Outcome} {Status} by {ExecutedBy ?? "-"} in {Seconds:F3} s{(Error is null ? "" : ": " + Error)}";
}
