using QcowActors.Testing;
using YamlDotNet.RepresentationModel;

namespace QcowActors.Deploy.Tests;

/// <summary>The objects kustomize renders from a manifest directory, as YAML mappings.</summary>
internal sealed class Manifests
{
    private Manifests(IReadOnlyList<YamlMappingNode> objects) => Objects = objects;

    public IReadOnlyList<YamlMappingNode> Objects { get; }

    public static Manifests Render(string directory)
    {
        var result = ProcessRunner.RunChecked("kubectl", ["kustomize", directory]);
        var stream = new YamlStream();
        stream.Load(new StringReader(result.Stdout));
        return new Manifests(stream.Documents.Select(d => d.RootNode).OfType<YamlMappingNode>().ToList());
    }

    public IEnumerable<YamlMappingNode> OfKind(string kind) => Objects.Where(o => Scalar(o, "kind") == kind);

    public static string Name(YamlMappingNode o) => Scalar(Child(o, "metadata"), "name") ?? "?";

    public static YamlNode? Child(YamlNode? node, string key)
        => node is YamlMappingNode m && m.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;

    public static YamlNode? Path(YamlNode? node, params string[] keys)
    {
        foreach (var key in keys) node = Child(node, key);
        return node;
    }

    public static string? Scalar(YamlNode? node, string key) => (Child(node, key) as YamlScalarNode)?.Value;

    public static IEnumerable<YamlNode> Items(YamlNode? node) => node is YamlSequenceNode s ? s.Children : [];

    public static Dictionary<string, string> Map(YamlNode? node)
        => node is YamlMappingNode m
            ? m.Children.ToDictionary(kv => ((YamlScalarNode)kv.Key).Value ?? "", kv => (kv.Value as YamlScalarNode)?.Value ?? "")
            : [];
}
