namespace QcowActors.Actors.Cluster;

/// <summary>
/// Configuration section "Cluster". With nothing set the node forms a cluster of its own
/// (remoting on 127.0.0.1, an ephemeral port, joining itself): single-node and clustered
/// deployments run the same code. These key names are a contract with operators: keep them.
/// </summary>
public sealed class ClusterSettings
{
    public const string Section = "Cluster";

    /// <summary>Address other nodes reach this one at (the pod IP on Kubernetes).</summary>
    public string Hostname { get; set; } = "127.0.0.1";

    /// <summary>Remoting port; 0 = ephemeral (single node).</summary>
    public int Port { get; set; }

    /// <summary>Seed nodes, akka.tcp://QcowActors@HOST:PORT (akka.ssl.tcp:// with <see cref="Tls"/>). Set: join them (no bootstrap).</summary>
    public string[] SeedNodes { get; set; } = [];

    /// <summary>Split-brain resolver: how long membership must be stable before unreachable nodes are downed ("20s", "500ms", "1m" or 00:00:20).</summary>
    public string StableAfter { get; set; } = "20s";

    public TimeSpan StableAfterTime => Duration.TryParse(StableAfter, out var t) ? t : TimeSpan.Zero;

    /// <summary>"kubernetes" (pods labelled app=qcowactors) or "config" (<see cref="DiscoveryEndpoints"/>): Akka.Management Cluster Bootstrap.</summary>
    public string? Discovery { get; set; }

    /// <summary>For Discovery=config: the nodes' management endpoints, HOST:MANAGEMENTPORT.</summary>
    public string[] DiscoveryEndpoints { get; set; } = [];

    /// <summary>Akka.Management HTTP port (bootstrap probes); never expose it outside the cluster.</summary>
    public int ManagementPort { get; set; } = 8558;

    /// <summary>Address the management endpoint binds (0.0.0.0 in a pod); default: <see cref="Hostname"/>.</summary>
    public string? ManagementBindHostname { get; set; }

    /// <summary>Label selector of the pods to discover (Discovery=kubernetes).</summary>
    public string PodLabelSelector { get; set; } = "app=qcowactors";

    /// <summary>How long a request for an image owned elsewhere may wait for the owner to be found or to answer (e.g. while a dead node is downed).</summary>
    public string RouteTimeout { get; set; } = "10s";

    public TimeSpan RouteTimeoutTime => Duration.TryParse(RouteTimeout, out var t) ? t : TimeSpan.Zero;

    /// <summary>Remoting over TLS with mutual authentication (Cluster:Tls:*): who may join.</summary>
    public ClusterTlsSettings Tls { get; set; } = new();

    /// <summary>Plain remoting on an address other hosts reach: only on a network nothing else can reach.</summary>
    public bool AllowPlainRemoting { get; set; }

    /// <summary>The scheme of this node's cluster address and of its seed nodes'.</summary>
    public string RemotingProtocol => Tls.Enabled ? "akka.ssl.tcp" : "akka.tcp";

    /// <summary>Remoting listens on loopback only ("localhost" or a loopback IP): no other host can connect.</summary>
    public bool IsLoopback => Hostname is { } host && IsLoopbackHost(host);

    /// <summary>"localhost" or a loopback address (127.0.0.0/8, ::1, bracketed or not): the one rule for remoting and HTTP listeners.</summary>
    public static bool IsLoopbackHost(string host) => host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
        || (System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var ip) && System.Net.IPAddress.IsLoopback(ip));

    /// <summary>
    /// Base64 of at least <see cref="MinForwardingKeyBytes"/> random bytes, the same on every node: a node
    /// forwarding a request to an image's owner signs its routing headers (HMAC-SHA256) with it, and
    /// only a request whose signature verifies has them trusted. Required on a multi-node node.
    /// </summary>
    public string? ForwardingKey { get; set; }

    /// <summary>Send X-QcowActors-Node (this node's cluster address) on responses; null: only when <see cref="Hostname"/> is a loopback address.</summary>
    public bool? ExposeNodeHeader { get; set; }

    public const int MinForwardingKeyBytes = 32;

    /// <summary>The decoded <see cref="ForwardingKey"/>, or null when it is unset or not base64 of at least <see cref="MinForwardingKeyBytes"/> bytes.</summary>
    public byte[]? ForwardingKeyBytes()
    {
        if (string.IsNullOrWhiteSpace(ForwardingKey)) return null;
        try
        {
            byte[] key = Convert.FromBase64String(ForwardingKey.Trim());
            return key.Length >= MinForwardingKeyBytes ? key : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// Whether responses name this node: <see cref="ExposeNodeHeader"/> when set, else only on a node
    /// other hosts cannot reach (a loopback <see cref="Hostname"/>), where the address tells nobody anything new.
    /// </summary>
    public bool ExposesNodeHeader => ExposeNodeHeader ?? IsLoopback;

    public bool UsesSeeds => SeedNodes.Length > 0;
    public bool UsesDiscovery => !string.IsNullOrWhiteSpace(Discovery);

    /// <summary>Joining other nodes (as opposed to the single-node default, which joins itself).</summary>
    public bool IsMultiNode => UsesSeeds || UsesDiscovery;

    /// <summary>Problems that must stop the node at start; empty when the settings are usable.</summary>
    public IEnumerable<string> Validate()
    {
        if (Port is < 0 or > 65535) yield return "Cluster:Port must be between 0 and 65535";
        if (ManagementPort is < 1 or > 65535) yield return "Cluster:ManagementPort must be between 1 and 65535";
        if (StableAfterTime <= TimeSpan.Zero) yield return $"Cluster:StableAfter must be a positive duration such as 20s or 500ms, not '{StableAfter}'";
        if (RouteTimeoutTime <= TimeSpan.Zero) yield return $"Cluster:RouteTimeout must be a positive duration such as 10s, not '{RouteTimeout}'";
        if (string.IsNullOrWhiteSpace(Hostname)) yield return "Cluster:Hostname must name this node's address";
        if (UsesSeeds && UsesDiscovery) yield return "set either Cluster:SeedNodes or Cluster:Discovery, not both";
        if (UsesDiscovery && Discovery is not ("kubernetes" or "config"))
            yield return $"Cluster:Discovery must be 'kubernetes' or 'config', not '{Discovery}'";
        if (Discovery == "config" && DiscoveryEndpoints.Length == 0)
            yield return "Cluster:Discovery=config needs Cluster:DiscoveryEndpoints (HOST:MANAGEMENTPORT of every node)";
        foreach (var seed in SeedNodes)
            if (!seed.StartsWith($"{RemotingProtocol}://{Service.ServiceCollectionExtensions.ActorSystemName}@", StringComparison.Ordinal))
                yield return $"Cluster:SeedNodes entry '{seed}' must look like {RemotingProtocol}://{Service.ServiceCollectionExtensions.ActorSystemName}@HOST:PORT" +
                             (Tls.Enabled ? " (Cluster:Tls is set)" : "");
        foreach (var problem in Tls.Validate()) yield return problem;
        // Any member admits a Join, so a node listening beyond loopback without TLS lets whoever
        // reaches its port into the cluster, a lone node as much as one of several.
        if (!Tls.Enabled && !IsLoopback && !AllowPlainRemoting && !string.IsNullOrWhiteSpace(Hostname))
            yield return $"Cluster:Hostname '{Hostname}' is not a loopback address, so other hosts reach this node's remoting port: set Cluster:Tls " +
                         "(Cluster:Tls:CertificatePath and Cluster:Tls:CaCertificatePath or Cluster:Tls:TrustedThumbprints) so that only nodes holding a trusted certificate can join, " +
                         "or Cluster:AllowPlainRemoting=true if the network is otherwise isolated";
        if (!string.IsNullOrWhiteSpace(ForwardingKey) && ForwardingKeyBytes() is null)
            // The value itself is a secret: never part of the message.
            yield return $"Cluster:ForwardingKey must be base64 of at least {MinForwardingKeyBytes} random bytes (e.g. `openssl rand -base64 32`), the same on every node";
        else if (IsMultiNode && string.IsNullOrWhiteSpace(ForwardingKey))
            yield return "Cluster:ForwardingKey is required when the node joins others (Cluster:SeedNodes or Cluster:Discovery): " +
                         $"nodes sign the requests they forward to each other with it. Set the same base64 key of at least {MinForwardingKeyBytes} random bytes " +
                         "on every node (e.g. `openssl rand -base64 32`; on Kubernetes the Secret in k8s/secret-forwarding.yaml)";
        if (IsMultiNode && FileLockingDisabled())
            yield return "file locking is disabled (DOTNET_SYSTEM_IO_DISABLEFILELOCKING / System.IO.DisableFileLocking): " +
                         "in a cluster the image lock is what keeps a second node from writing an image; unset it";
    }

    /// <summary>.NET skips its flock when this switch is on, silently: the fence would be gone.</summary>
    public static bool FileLockingDisabled()
    {
        if (AppContext.TryGetSwitch("System.IO.DisableFileLocking", out bool on) && on) return true;
        string? env = Environment.GetEnvironmentVariable("DOTNET_SYSTEM_IO_DISABLEFILELOCKING");
        return env is not null && (env == "1" || env.Equals("true", StringComparison.OrdinalIgnoreCase));
    }
}
