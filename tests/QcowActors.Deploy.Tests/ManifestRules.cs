using YamlDotNet.RepresentationModel;
using static QcowActors.Deploy.Tests.Manifests;

namespace QcowActors.Deploy.Tests;

/// <summary>
/// What the schemas cannot see: how the objects refer to each other and to the application.
/// Each rule returns the problems it finds, one readable line each.
/// </summary>
internal static class ManifestRules
{
    /// <summary>Port names the application and the cluster bootstrap rely on.</summary>
    public static readonly string[] RequiredPorts = ["http", "management", "akka-remote"];

    public static List<string> Check(Manifests m, ISet<string> appPaths)
    {
        var problems = new List<string>();
        var sets = m.OfKind("StatefulSet").ToList();
        if (sets.Count != 1)
        {
            problems.Add($"expected one StatefulSet, found {sets.Count}");
            return problems;
        }
        var set = sets[0];
        var spec = Child(set, "spec");
        var pod = Path(spec, "template", "spec");
        var podLabels = Map(Path(spec, "template", "metadata", "labels"));
        var containers = Items(Child(pod, "containers")).ToList();
        var ports = containers.SelectMany(c => Items(Child(c, "ports"))).Select(p => Scalar(p, "name")).OfType<string>().ToHashSet();

        // Selectors ↔ pod labels.
        problems.AddRange(SelectorProblems($"StatefulSet/{Name(set)}", Map(Path(spec, "selector", "matchLabels")), podLabels));
        foreach (var service in m.OfKind("Service"))
            problems.AddRange(SelectorProblems($"Service/{Name(service)}", Map(Path(service, "spec", "selector")), podLabels));
        foreach (var pdb in m.OfKind("PodDisruptionBudget"))
            problems.AddRange(SelectorProblems($"PodDisruptionBudget/{Name(pdb)}", Map(Path(pdb, "spec", "selector", "matchLabels")), podLabels));
        foreach (var policy in m.OfKind("NetworkPolicy"))
            problems.AddRange(SelectorProblems($"NetworkPolicy/{Name(policy)}", Map(Path(policy, "spec", "podSelector", "matchLabels")), podLabels));

        // Named ports: the ones the app and the bootstrap use, and every name something refers to.
        foreach (var name in RequiredPorts.Where(p => !ports.Contains(p)))
            problems.Add($"StatefulSet/{Name(set)}: no container port named '{name}'");
        foreach (var service in m.OfKind("Service"))
            foreach (var port in Items(Path(service, "spec", "ports")))
                if (Scalar(port, "targetPort") is { } target && !int.TryParse(target, out _) && !ports.Contains(target))
                    problems.Add($"Service/{Name(service)}: targetPort '{target}' names no container port");
        foreach (var policy in m.OfKind("NetworkPolicy"))
            foreach (var rule in Items(Path(policy, "spec", "ingress")))
                foreach (var port in Items(Child(rule, "ports")))
                    if (Scalar(port, "port") is { } p && !int.TryParse(p, out _) && !ports.Contains(p))
                        problems.Add($"NetworkPolicy/{Name(policy)}: port '{p}' names no container port");
        var headless = m.OfKind("Service").Where(s => Scalar(Child(s, "spec"), "clusterIP") == "None").ToList();
        if (headless.Count == 0) problems.Add("no headless Service (clusterIP: None) for the StatefulSet");
        foreach (var s in headless)
        {
            if (Scalar(Child(s, "spec"), "publishNotReadyAddresses") != "true")
                problems.Add($"Service/{Name(s)}: a headless Service for bootstrap must publish not-ready addresses");
            var names = Items(Path(s, "spec", "ports")).Select(p => Scalar(p, "name")).ToHashSet();
            foreach (var needed in new[] { "management", "akka-remote" }.Where(n => !names.Contains(n)))
                problems.Add($"Service/{Name(s)}: no port named '{needed}'");
        }
        if (Scalar(spec, "serviceName") is not { } serviceName || headless.All(s => Name(s) != serviceName))
            problems.Add($"StatefulSet/{Name(set)}: serviceName must name the headless Service");

        // Probes: on a named port, at a path the application serves.
        foreach (var c in containers)
            foreach (var probe in new[] { "livenessProbe", "readinessProbe", "startupProbe" })
            {
                if (Child(c, probe) is not { } p) continue;
                string? path = Scalar(Child(p, "httpGet"), "path");
                string? port = Scalar(Child(p, "httpGet"), "port");
                if (path is null || !appPaths.Contains(path))
                    problems.Add($"{probe}: path '{path}' is not served by the application (openapi.yaml)");
                if (port is not null && !int.TryParse(port, out _) && !ports.Contains(port))
                    problems.Add($"{probe}: port '{port}' names no container port");
            }
        if (Child(Child(FirstContainer(containers), "readinessProbe"), "httpGet") is null) problems.Add("the container has no HTTP readiness probe");

        // Identity and permissions.
        string? account = Scalar(pod, "serviceAccountName");
        if (account is null) problems.Add("the pod sets no serviceAccountName");
        else if (m.OfKind("ServiceAccount").All(a => Name(a) != account)) problems.Add($"ServiceAccount '{account}' is not in the manifests");
        var bindings = m.OfKind("RoleBinding").ToList();
        if (!bindings.Any(b => Items(Child(b, "subjects")).Any(s => Scalar(s, "kind") == "ServiceAccount" && Scalar(s, "name") == account)))
            problems.Add($"no RoleBinding has the pods' ServiceAccount '{account}' as subject");
        foreach (var b in bindings)
        {
            string? role = Scalar(Child(b, "roleRef"), "name");
            if (m.OfKind("Role").All(r => Name(r) != role)) problems.Add($"RoleBinding/{Name(b)}: Role '{role}' is not in the manifests");
        }
        bool readsPods = m.OfKind("Role").Any(r => Items(Child(r, "rules")).Any(rule =>
            Items(Child(rule, "resources")).Any(x => (x as YamlScalarNode)?.Value == "pods")
            && new[] { "get", "watch", "list" }.All(v => Items(Child(rule, "verbs")).Any(x => (x as YamlScalarNode)?.Value == v))));
        if (!readsPods) problems.Add("no Role grants get, watch and list on pods (Kubernetes discovery needs all three)");

        // Placement and storage.
        if (Scalar(spec, "podManagementPolicy") != "Parallel")
            problems.Add("podManagementPolicy must be Parallel: OrderedReady with membership-gated readiness deadlocks bootstrap");
        if (Child(spec, "volumeClaimTemplates") is not null)
            problems.Add("volumeClaimTemplates give every pod its own disk: the store must be one shared ReadWriteMany claim");
        var claims = Items(Child(pod, "volumes")).Select(v => Scalar(Child(v, "persistentVolumeClaim"), "claimName")).OfType<string>().ToList();
        if (claims.Count == 0) problems.Add("the pod mounts no PersistentVolumeClaim for the store");
        foreach (var claim in claims)
        {
            var pvc = m.OfKind("PersistentVolumeClaim").FirstOrDefault(p => Name(p) == claim);
            if (pvc is null) problems.Add($"PersistentVolumeClaim '{claim}' is not in the manifests");
            else if (!Items(Path(pvc, "spec", "accessModes")).Any(a => (a as YamlScalarNode)?.Value == "ReadWriteMany"))
                problems.Add($"PersistentVolumeClaim/{claim} must be ReadWriteMany (all pods share the store)");
        }

        // In the pod the app must listen beyond loopback, and advertise the pod's address to the cluster.
        var container = FirstContainer(containers);
        var args = Items(Child(container, "args")).Select(a => (a as YamlScalarNode)?.Value ?? "").ToList();
        int urls = args.IndexOf("--urls");
        if (urls < 0 || urls + 1 >= args.Count || !args[urls + 1].Contains("0.0.0.0"))
            problems.Add("the container must pass --urls http://0.0.0.0:PORT (the app binds 127.0.0.1 by default)");
        var env = Items(Child(container, "env")).ToDictionary(e => Scalar(e, "name") ?? "", e => Scalar(e, "value"));
        if (!env.TryGetValue("Cluster__Hostname", out var host) || host != "$(POD_IP)")
            problems.Add("Cluster__Hostname must be $(POD_IP)");
        if (!env.ContainsKey("POD_IP")) problems.Add("POD_IP must come from the pod's status.podIP");
        problems.AddRange(SettingProblems(env, container));
        problems.AddRange(ClusterTlsRules.Check(m, pod, container, env));
        problems.AddRange(ForwardingKeyProblems(m, container));
        problems.AddRange(SecretProblems(m, container));
        problems.AddRange(ListenerProblems(env, args));
        return problems;
    }

    /// <summary>Every secretKeyRef names a Secret of the manifests and a key it has (else the pod never starts).</summary>
    private static IEnumerable<string> SecretProblems(Manifests m, YamlNode? container)
    {
        foreach (var e in Items(Child(container, "env")))
        {
            if (Path(e, "valueFrom", "secretKeyRef") is not { } reference) continue;
            string? secretName = Scalar(reference, "name");
            string? key = Scalar(reference, "key");
            var secret = m.OfKind("Secret").FirstOrDefault(s => Name(s) == secretName);
            if (secret is null)
                yield return $"env {Scalar(e, "name")}: Secret '{secretName}' is not in the manifests";
            else if (!Map(Child(secret, "stringData")).ContainsKey(key ?? "") && !Map(Child(secret, "data")).ContainsKey(key ?? ""))
                yield return $"env {Scalar(e, "name")}: Secret '{secretName}' has no key '{key}'";
        }
    }

    /// <summary>
    /// The app's own start rule (src/Api/Auth/ListenerRules.cs), checked offline: a pod listening
    /// beyond loopback needs tokens, and plain HTTP with tokens needs Auth:AllowPlainHttp — or,
    /// without tokens, Auth:AllowAnonymous. Otherwise every pod would refuse to start.
    /// </summary>
    private static IEnumerable<string> ListenerProblems(Dictionary<string, string?> env, List<string> args)
    {
        bool tokens = env.Keys.Any(k => k.StartsWith("Auth__Tokens__", StringComparison.Ordinal) && k.EndsWith("__Sha256", StringComparison.Ordinal));
        bool plainHttp = args.Any(a => a.Contains("http://", StringComparison.Ordinal));
        bool Set(string name) => env.TryGetValue(name, out var v) && string.Equals(v, "true", StringComparison.OrdinalIgnoreCase);
        if (tokens && plainHttp && !Set("Auth__AllowPlainHttp"))
            yield return "the pods listen on plain http:// beyond loopback with tokens: set Auth__AllowPlainHttp=\"true\" (TLS at the ingress) or serve https://";
        if (!tokens && !Set("Auth__AllowAnonymous"))
            yield return "the pods listen beyond loopback without tokens: configure Auth__Tokens__N__* (Secret qcowactors-auth) or set Auth__AllowAnonymous=\"true\"";
    }

    /// <summary>The element type of an array or a generic list-like setting, else null.</summary>
    private static Type? ElementType(Type type)
        => type.IsArray ? type.GetElementType()
            : type.IsGenericType && type.GetGenericArguments() is [var element] && typeof(System.Collections.IEnumerable).IsAssignableFrom(type) ? element
            : null;

    private static YamlNode? FirstContainer(List<YamlNode> containers) => containers.FirstOrDefault();

    /// <summary>
    /// Settings the app reads (ASP.NET configuration, "__" = ":"): a misspelt one would be ignored
    /// in silence. The ports named in the container must be the ones the app is told to use.
    /// </summary>
    private static IEnumerable<string> SettingProblems(Dictionary<string, string?> env, YamlNode? container)
    {
        var sections = new Dictionary<string, Type>
        {
            [QcowActors.Actors.Cluster.ClusterSettings.Section] = typeof(QcowActors.Actors.Cluster.ClusterSettings),
            [QcowActors.Actors.Service.StoreOptions.Section] = typeof(QcowActors.Actors.Service.StoreOptions),
            [QcowActors.Api.Auth.AuthOptions.Section] = typeof(QcowActors.Api.Auth.AuthOptions),
        };
        foreach (var name in env.Keys)
        {
            var parts = name.Split("__");
            if (parts.Length < 2 || !sections.TryGetValue(parts[0], out var type)) continue;
            // Down nested sections (Cluster__Tls__KeyPath) and into a list's elements (Auth__Tokens__0__Name).
            for (var i = 1; i < parts.Length && type != typeof(string); i++)
            {
                if (ElementType(type) is { } element)
                {
                    if (!int.TryParse(parts[i], out _))
                    {
                        yield return $"env {name}: {string.Join(":", parts[..i])} is a list, so {parts[i]} should be an index";
                        break;
                    }
                    type = element;
                    continue;
                }
                var property = type.GetProperty(parts[i]);
                if (property is null || !property.CanWrite)
                {
                    yield return $"env {name} names no setting of {string.Join(":", parts[..i])} (known: {string.Join(", ", type.GetProperties().Where(p => p.CanWrite).Select(p => p.Name))})";
                    break;
                }
                type = property.PropertyType;
            }
        }
        var ports = Items(Child(container, "ports")).ToDictionary(p => Scalar(p, "name") ?? "", p => Scalar(p, "containerPort"));
        foreach (var (portName, setting) in new[] { ("akka-remote", "Cluster__Port"), ("management", "Cluster__ManagementPort") })
        {
            if (ports.TryGetValue(portName, out var port) && (!env.TryGetValue(setting, out var value) || value != port))
                yield return $"container port '{portName}' is {port} but {setting} is {(env.TryGetValue(setting, out var v) ? v : "not set")}";
        }
    }

    /// <summary>
    /// Pods that discover each other need Cluster:ForwardingKey (the app refuses to start without it),
    /// and a key belongs in a Secret, never in the manifest: a secretKeyRef to a Secret of these
    /// manifests that has that key.
    /// </summary>
    private static IEnumerable<string> ForwardingKeyProblems(Manifests m, YamlNode? container)
    {
        const string setting = "Cluster__ForwardingKey";
        var entry = Items(Child(container, "env")).FirstOrDefault(e => Scalar(e, "name") == setting);
        if (entry is null)
        {
            yield return $"{setting} is not set: nodes that join others refuse to start without it";
            yield break;
        }
        var reference = Path(entry, "valueFrom", "secretKeyRef");
        if (Child(entry, "value") is not null || reference is null)
        {
            yield return $"{setting} must come from a Secret (valueFrom.secretKeyRef), not a value in the manifest";
            yield break;
        }
        string? name = Scalar(reference, "name");
        string? key = Scalar(reference, "key");
        var secret = m.OfKind("Secret").FirstOrDefault(s => Name(s) == name);
        if (secret is null)
            yield return $"{setting}: Secret '{name}' is not in the manifests";
        else if (!Map(Child(secret, "stringData")).ContainsKey(key ?? "") && !Map(Child(secret, "data")).ContainsKey(key ?? ""))
            yield return $"{setting}: Secret/{name} has no key '{key}'";
    }

    private static IEnumerable<string> SelectorProblems(string who, Dictionary<string, string> selector, Dictionary<string, string> podLabels)
    {
        if (selector.Count == 0)
        {
            yield return $"{who}: empty selector";
            yield break;
        }
        foreach (var (key, value) in selector)
            if (!podLabels.TryGetValue(key, out var label) || label != value)
                yield return $"{who}: selector {key}={value} matches no label of the StatefulSet's pods";
    }
}
