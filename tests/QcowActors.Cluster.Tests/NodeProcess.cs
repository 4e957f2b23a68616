using System.Globalization;
using System.Net;
using QcowActors.Testing;

namespace QcowActors.Cluster.Tests;

/// <summary>
/// One incarnation of a cluster node: a server process with a fixed remoting port (its cluster
/// address survives restarts) and a fresh HTTP port, its whole log, and how it ended.
/// </summary>
internal sealed class NodeProcess : IAsyncDisposable
{
    private long _killedNs;

    public NodeProcess(int index, int incarnation, int remotingPort, bool tls, ServerProcess server, NodeLog log, long startedNs)
    {
        Index = index;
        Tls = tls;
        Incarnation = incarnation;
        RemotingPort = remotingPort;
        Server = server;
        Log = log;
        StartedNs = startedNs;
    }

    public int Index { get; }

    public int Incarnation { get; }

    public int RemotingPort { get; }

    /// <summary>Remoting runs over TLS (Cluster:Tls): the address is akka.ssl.tcp://.</summary>
    public bool Tls { get; }

    public ServerProcess Server { get; }

    public NodeLog Log { get; }

    public long StartedNs { get; }

    public int Pid => Server.Pid;

    public string BaseUrl => Server.BaseUrl;

    /// <summary>The cluster address every response of this node carries in X-QcowActors-Node.</summary>
    public string Address => AddressOf(RemotingPort, Tls);

    public bool HasExited => Server.HasExited;

    /// <summary>When the process ended: its SIGKILL (after the kill returned), else when its exit was noticed; null while it runs.</summary>
    public long? EndNs
    {
        get
        {
            var killed = Interlocked.Read(ref _killedNs);
            if (killed != 0)
            {
                return killed;
            }
            return Server.ExitedTimestamp is { } t ? Monotonic.FromTimestamp(t) : null;
        }
    }

    public static string AddressOf(int remotingPort, bool tls)
        => string.Create(CultureInfo.InvariantCulture, $"{(tls ? "akka.ssl.tcp" : "akka.tcp")}://QcowActors@127.0.0.1:{remotingPort}");

    /// <summary>SIGKILL; returns the time just before the signal was sent.</summary>
    public long Kill()
    {
        var before = Monotonic.Now;
        Server.Kill();
        Interlocked.Exchange(ref _killedNs, Monotonic.Now);
        return before;
    }

    /// <summary>Sends a signal ("TERM", "STOP", "CONT"); returns the time just before it was sent.</summary>
    public long Signal(string signal)
    {
        var before = Monotonic.Now;
        Server.Signal(signal);
        return before;
    }

    /// <summary>GET /healthz/ready answered 200 (the node is an Up member of its cluster).</summary>
    public async Task<bool> IsReadyAsync(HttpClient probe)
    {
        if (HasExited)
        {
            return false;
        }
        try
        {
            using var response = await probe.GetAsync($"{BaseUrl}/healthz/ready");
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException)
        {
            return false;
        }
    }

    public override string ToString() => $"node{Index} (pid {Pid}, {Address}, {BaseUrl})";

    public async ValueTask DisposeAsync()
    {
        if (!Server.HasExited)
        {
            Kill();
        }
        await Server.DisposeAsync();
        Log.Dispose();
    }
}
