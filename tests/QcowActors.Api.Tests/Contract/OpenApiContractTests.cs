using System.Net;
using System.Text.Json;
using QcowActors.Api.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using YamlDotNet.RepresentationModel;

namespace QcowActors.Api.Tests.Contract;

/// <summary>
/// openapi.yaml (hand-written, the contract) and /openapi/v1.json (generated from the endpoints)
/// must describe the same operations: every (method, path, status, media type) and every request
/// body media type. Runs on the real engine, as the server is deployed.
/// </summary>
public sealed class OpenApiContractTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly string[] Methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    private ApiServer _server = null!;

    public async Task InitializeAsync() => _server = await ApiServer.StartWithEngineAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Generated_document_and_openapi_yaml_describe_the_same_operations()
    {
        string generatedJson = await _server.Client.GetStringAsync("/openapi/v1.json");
        SortedSet<string> generated = Operations(ToNode(JsonDocument.Parse(generatedJson).RootElement));

        var yaml = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(RepositoryRoot.Find(), "openapi.yaml")))
            yaml.Load(reader);
        SortedSet<string> written = Operations(ToNode((YamlMappingNode)yaml.Documents[0].RootNode));

        var onlyGenerated = generated.Except(written).ToList();
        var onlyWritten = written.Except(generated).ToList();
        foreach (string line in onlyGenerated)
            output.WriteLine($"only in /openapi/v1.json: {line}");
        foreach (string line in onlyWritten)
            output.WriteLine($"only in openapi.yaml:      {line}");
        Assert.True(onlyGenerated.Count == 0 && onlyWritten.Count == 0,
            "openapi.yaml and /openapi/v1.json differ:\n"
            + string.Join('\n', onlyGenerated.Select(l => "  only generated: " + l).Concat(onlyWritten.Select(l => "  only in yaml:   " + l))));
        Assert.True(generated.Count > 40, $"suspiciously few operations compared: {generated.Count}");
    }

    [Fact]
    public async Task Generated_document_is_served_as_json()
    {
        using HttpResponseMessage response = await _server.Client.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Swagger_ui_is_served_as_html()
    {
        using HttpResponseMessage response = await _server.Client.GetAsync("/swagger");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("swagger", await response.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>"METHOD path status media" lines ("-" for no body) plus "METHOD path request media".</summary>
    private static SortedSet<string> Operations(Node document)
    {
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (path, item) in document.Map("paths"))
        {
            foreach (var (method, operation) in item.Entries)
            {
                if (!Methods.Contains(method))
                    continue;
                string op = $"{method.ToUpperInvariant()} {path}";
                if (operation.TryGet("requestBody") is { } body)
                    foreach (var (media, _) in Resolve(document, body).Map("content"))
                        set.Add($"{op} request {media}");
                foreach (var (status, response) in operation.Map("responses"))
                {
                    var content = Resolve(document, response).Map("content");
                    if (content.Count == 0)
                        set.Add($"{op} {status} -");
                    foreach (var (media, _) in content)
                        set.Add($"{op} {status} {media}");
                }
            }
        }
        return set;
    }

    private static Node Resolve(Node document, Node node)
    {
        if (node.TryGet("$ref")?.Scalar is not { } reference)
            return node;
        Node target = document;
        foreach (string part in reference.TrimStart('#', '/').Split('/'))
            target = target.TryGet(part) ?? throw new InvalidOperationException($"unresolved $ref {reference}");
        return Resolve(document, target);
    }

    /// <summary>A neutral tree for JSON and YAML alike: mappings and scalars are all the comparison needs.</summary>
    private sealed record Node(string? Scalar, List<(string Key, Node Value)> Entries)
    {
        public Node? TryGet(string key) => Entries.FirstOrDefault(e => e.Key == key).Value;
        public List<(string Key, Node Value)> Map(string key) => TryGet(key)?.Entries ?? [];
    }

    private static Node ToNode(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => new Node(null, [.. e.EnumerateObject().Select(p => (p.Name, ToNode(p.Value)))]),
        JsonValueKind.Array => new Node(null, [.. e.EnumerateArray().Select((v, i) => (i.ToString(), ToNode(v)))]),
        _ => new Node(e.ToString(), []),
    };

    private static Node ToNode(YamlNode n) => n switch
    {
        YamlMappingNode m => new Node(null, [.. m.Children.Select(c => (((YamlScalarNode)c.Key).Value!, ToNode(c.Value)))]),
        YamlSequenceNode s => new Node(null, [.. s.Children.Select((v, i) => (i.ToString(), ToNode(v)))]),
        YamlScalarNode s => new Node(s.Value, []),
        _ => new Node(null, []),
    };
}
