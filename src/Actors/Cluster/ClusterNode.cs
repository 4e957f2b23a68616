namespace QcowActors.Actors.Cluster;

/// <summary>
/// This process as the cluster sees it: its cluster address (what every response's
/// X-QcowActors-Node names) and the base URL other nodes forward HTTP requests to.
/// </summary>
public sealed class ClusterNode
{
    private volatile string _address = "";
    private volatile string? _httpUrl;

    /// <summary>akka.tcp://QcowActors@HOST:PORT, set when the actor system has started.</summary>
    public string Address { get => _address; set => _address = value; }

    /// <summary>http://HOST:PORT reachable from the other nodes, set when the HTTP server listens.</summary>
    public string? HttpUrl { get => _httpUrl; set => _httpUrl = value; }
}
