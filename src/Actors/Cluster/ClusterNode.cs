namespace QcowActors.Actors.Cluster;

/// <summary>
/// This process as the cluster sees it: its cluster address (what every response's
/// X-QcowActors-Node names) and the base URL other nodes forward HTTP requests to.
/// </summary>
public sealed class ClusterNode
{
    private volatile string _address = "";
    private volatile string? _httpUrl;

    /// <summary>akka.tcp://QcowActors@HOST:PORT (akka.ssl.tcp:// with Cluster:Tls), set when the actor system has started.</summary>
    public string Address { get => _address; set => _address = value; }

    /// <summary>http://HOST:PORT reachable from the other nodes, set when the HTTP server listens.</summary>
    public string? HttpUrl { get => _httpUrl; set => _httpUrl = value; }

    private readonly CancellationTokenSource _handedOff = new();

    /// <summary>
    /// Cancelled once this node's shard region has handed its images off (it is stopping): from
    /// then on it cannot locate images and passes requests on to the other nodes.
    /// </summary>
    public CancellationToken HandedOff => _handedOff.Token;

    public void MarkHandedOff() => _handedOff.Cancel();
}
