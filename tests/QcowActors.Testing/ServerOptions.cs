namespace QcowActors.Testing;

/// <summary>How to start a <see cref="ServerProcess"/>.</summary>
public sealed record ServerOptions
{
    /// <summary>An existing store directory (kept on dispose), e.g. to restart a server on the same images. Null: a fresh temp store, deleted on dispose.</summary>
    public string? StoreDirectory { get; init; }

    /// <summary>Extra environment, e.g. ["Storage__PassivateAfter"] = "00:00:02".</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>Extra command-line arguments after --urls.</summary>
    public IReadOnlyList<string> Arguments { get; init; } = [];

    /// <summary>How long to wait for GET /healthz/live to answer 200.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Timeout of the <see cref="ServerProcess.Client"/> requests.</summary>
    public TimeSpan ClientTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Called with every line the server writes to stdout or stderr, as it arrives (on a reader
    /// thread), e.g. to keep log lines that <see cref="ServerProcess.Output"/>'s bounded tail would drop.
    /// </summary>
    public Action<string>? OutputLine { get; init; }
}
