using System.Globalization;
using System.Net;
using System.Net.Sockets;
using QcowActors.Testing;

namespace QcowActors.Cluster.Tests;

/// <summary>How the nodes find each other.</summary>
internal enum ClusterFormation
{
    /// <summary>Cluster:SeedNodes: every node lists every node, node 0 first (it forms the cluster).</summary>
    SeedNodes,

    /// <summary>Cluster:Discovery=config: Akka.Management bootstrap over a fixed list of management endpoints (the Kubernetes code path).</summary>
    ConfigDiscovery,
}

/// <summary>
/// A cluster of server processes on 127.0.0.1 sharing one store directory. Each node keeps its
/// remoting (and management) port across restarts, so a restarted node comes back with the same
/// cluster address; its HTTP port is new each time. With <see cref="LoopbackTls"/> remoting runs
/// over mutual TLS (akka.ssl.tcp addresses).
/// </summary>
internal sealed class LoopbackCluster : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(90);

    private readonly string _name;
    private readonly ClusterFormation _formation;
    private readonly int[] _remotingPorts;
    private readonly int[] _managementPorts;
    private readonly NodeProcess?[] _current;
    private readonly List<NodeProcess> _incarnations = [];
    private readonly TempDirectory _store;
    private readonly WriterLedger _ledger;
    private readonly string _logDirectory;
    private readonly LoopbackTls? _tls;
    private readonly IReadOnlyDictionary<string, string> _settings;

    private LoopbackCluster(string name, ClusterFormation formation, int size, WriterLedger ledger, string logDirectory, LoopbackTls? tls, IReadOnlyDictionary<string, string>? settings)
    {
        _name = name;
        _formation = formation;
        _tls = tls;
        _settings = settings ?? new Dictionary<string, string>();
        _ledger = ledger;
        _logDirectory = logDirectory;
        _store = new TempDirectory($"qcowactors-cluster-{name}");
        var ports = FreePorts(2 * size);
        _remotingPorts = ports[..size];
        _managementPorts = ports[size..];
        _current = new NodeProcess?[size];
    }

    public string Name => _name;

    /// <summary>The Cluster:ForwardingKey every node of this cluster is given (nodes sign the requests they forward with it).</summary>
    public string ForwardingKey { get; } = ClusterKeys.NewForwardingKey();

    public string StoreDirectory => _store.Path;

    public int Size => _current.Length;

    /// <summary>The current process of each node slot (null before its first start).</summary>
    public IReadOnlyList<NodeProcess?> Nodes => _current;

    /// <summary>The nodes whose current process is running.</summary>
    public IReadOnlyList<NodeProcess> Running => _current.Where(n => n is { HasExited: false }).Select(n => n!).ToList();

    /// <summary>Every process ever started for this cluster.</summary>
    public IReadOnlyList<NodeProcess> Incarnations
    {
        get
        {
            lock (_incarnations)
            {
                return _incarnations.ToList();
            }
        }
    }

    /// <summary>The Cluster:ManagementPort of node <paramref name="index"/> (listened on with <see cref="ClusterFormation.ConfigDiscovery"/> only).</summary>
    public int ManagementPort(int index) => _managementPorts[index];

    /// <summary>The cluster addresses of the node slots, node 0 first (what a joining node lists as seeds).</summary>
    public IReadOnlyList<string> Addresses => _remotingPorts.Select(p => NodeProcess.AddressOf(p, _tls is not null)).ToList();

    /// <summary>
    /// Starts every node at once and waits until all of them are Up members. <paramref name="settings"/>
    /// are added to every node's environment.
    /// </summary>
    public static async Task<LoopbackCluster> StartAsync(string name, ClusterFormation formation, int size, WriterLedger ledger, string logDirectory,
        LoopbackTls? tls = null, IReadOnlyDictionary<string, string>? settings = null)
    {
        var cluster = new LoopbackCluster(name, formation, size, ledger, logDirectory, tls, settings);
        try
        {
            await Task.WhenAll(Enumerable.Range(0, size).Select(cluster.StartNodeAsync));
            await cluster.WaitAllReadyAsync();
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts a node whose process is gone (killed or exited) again, on the same remoting port.</summary>
    public async Task<NodeProcess> RestartAsync(int index)
    {
        if (_current[index] is { HasExited: false } running)
        {
            throw new InvalidOperationException($"{running} is still running");
        }
        return await StartNodeAsync(index);
    }

    /// <summary>Restarts every node that is not running, then waits until every node answers /healthz/ready with 200.</summary>
    public async Task<IReadOnlyList<NodeProcess>> EnsureAllUpAsync()
    {
        var restarted = new List<NodeProcess>();
        for (var i = 0; i < Size; i++)
        {
            if (_current[i] is null or { HasExited: true })
            {
                restarted.Add(await StartNodeAsync(i));
            }
        }
        await WaitAllReadyAsync();
        return restarted;
    }

    public async Task WaitAllReadyAsync()
    {
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + ReadyTimeout;
        while (true)
        {
            var nodes = _current.Select(n => n ?? throw new InvalidOperationException("a node was never started")).ToList();
            var ready = await Task.WhenAll(nodes.Select(n => n.IsReadyAsync(probe)));
            if (ready.All(r => r))
            {
                return;
            }
            if (nodes.FirstOrDefault(n => n.HasExited) is { } dead)
            {
                var error = dead.Log.Matching("[ERROR]").Select(l => l.Line).FirstOrDefault() ?? "no [ERROR] line";
                throw new InvalidOperationException($"Cluster {_name}: {dead} exited with code {dead.Server.ExitCode} before every node was ready; first error: {error}{Environment.NewLine}Its log: {dead.Log.Path}{Environment.NewLine}{dead.Server.Output}");
            }
            if (DateTime.UtcNow > deadline)
            {
                var waiting = string.Join(", ", nodes.Where((_, i) => !ready[i]));
                throw new TimeoutException($"Cluster {_name}: not every node was ready within {ReadyTimeout} (not ready: {waiting}). Logs in {_logDirectory}");
            }
            await Task.Delay(200);
        }
    }

    /// <summary>The running node with that cluster address, or null.</summary>
    public NodeProcess? ByAddress(string? address)
        => address is null ? null : _current.FirstOrDefault(n => n is not null && n.Address == address);

    /// <summary>SIGTERM to every running node at once; returns each one's exit code (the images are closed cleanly when this returns).</summary>
    public async Task<IReadOnlyList<(NodeProcess Node, int ExitCode)>> StopAllAsync(TimeSpan timeout)
    {
        var running = Running;
        var codes = await Task.WhenAll(running.Select(async n => (n, await n.Server.StopAsync(timeout))));
        return codes;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Incarnations)
        {
            await node.DisposeAsync();
        }
        _store.Dispose();
    }

    private async Task<NodeProcess> StartNodeAsync(int index)
    {
        int incarnation;
        lock (_incarnations)
        {
            incarnation = _incarnations.Count(n => n.Index == index) + 1;
        }
        var log = new NodeLog(Path.Combine(_logDirectory, $"{_name}-node{index}-{incarnation}.log"));
        var options = new ServerOptions
        {
            StoreDirectory = _store.Path,
            Environment = NodeEnvironment(index),
            StartTimeout = TimeSpan.FromSeconds(60),
            ClientTimeout = TimeSpan.FromSeconds(60),
            OutputLine = line =>
            {
                _ledger.Observe(line);
                log.Add(line);
            },
        };
        var started = Monotonic.Now;
        ServerProcess server;
        try
        {
            server = await ServerProcess.StartAsync(options);
        }
        catch
        {
            log.Dispose();
            throw;
        }
        var node = new NodeProcess(index, incarnation, _remotingPorts[index], _tls is not null, server, log, started);
        _ledger.Track(node.Pid, () => node.EndNs);
        lock (_incarnations)
        {
            _incarnations.Add(node);
        }
        _current[index] = node;
        return node;
    }

    private Dictionary<string, string> NodeEnvironment(int index)
    {
        var env = new Dictionary<string, string>();
        // The key, and X-QcowActors-Node: the scenarios find an image's owner by it.
        foreach (var (key, value) in ClusterKeys.NodeEnvironment(ForwardingKey))
        {
            env[key] = value;
        }
        env["Cluster__Hostname"] = "127.0.0.1";
        env["Cluster__Port"] = Invariant(_remotingPorts[index]);
        env["Cluster__StableAfter"] = "5s";
        // One line per forwarded request at Information: noise that costs CPU on a 2-core machine.
        env["Logging__LogLevel__Yarp"] = "Warning";
        switch (_formation)
        {
            case ClusterFormation.SeedNodes:
                // Every node lists every node, node 0 first: node 0 forms the cluster when nobody
                // answers, and a restarted node 0 joins the running ones instead of forming a second cluster.
                for (var i = 0; i < Size; i++)
                {
                    env[$"Cluster__SeedNodes__{Invariant(i)}"] = NodeProcess.AddressOf(_remotingPorts[i], _tls is not null);
                }
                break;
            case ClusterFormation.ConfigDiscovery:
                env["Cluster__Discovery"] = "config";
                env["Cluster__ManagementPort"] = Invariant(_managementPorts[index]);
                for (var i = 0; i < Size; i++)
                {
                    env[$"Cluster__DiscoveryEndpoints__{Invariant(i)}"] = $"127.0.0.1:{Invariant(_managementPorts[i])}";
                }
                break;
        }
        foreach (var (key, value) in _tls?.Settings(index) ?? new Dictionary<string, string>())
        {
            env[key] = value;
        }
        foreach (var (key, value) in _settings)
        {
            env[key] = value;
        }
        return env;
    }

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Distinct loopback ports that were free a moment ago, below Linux's ephemeral range
    /// (32768-60999) so that no outgoing connection takes one while a node is down between restarts.
    /// </summary>
    internal static int[] FreePorts(int count)
    {
        var listeners = new List<TcpListener>();
        try
        {
            while (listeners.Count < count)
            {
                var listener = new TcpListener(IPAddress.Loopback, Random.Shared.Next(20000, 32000));
                try
                {
                    listener.Start();
                    listeners.Add(listener);
                }
                catch (SocketException)
                {
                    // Taken: try another.
                }
            }
            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (var listener in listeners)
            {
                listener.Stop();
            }
        }
    }
}
