using System.Text.Json;
using QcowActors.Api.Auth;
using QcowActors.Api.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using YamlDotNet.RepresentationModel;

namespace QcowActors.Api.Tests.Contract;

/// <summary>
/// Who may call what, in the documents: openapi.yaml and /openapi/v1.json give every operation the
/// same scope (x-scope) and security requirements, the scope EndpointScopes gives its endpoint, and
/// 401 and 403 wherever a token is needed. The document is generated without tokens configured,
/// as it is the same either way.
/// </summary>
public sealed class OpenApiSecurityContractTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly string[] Methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    private ApiServer _server = null!;

    public async Task InitializeAsync() => _server = await ApiServer.StartWithEngineAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private sealed record Operation(string Method, string Path, string? Scope, string Security, IReadOnlySet<string> Statuses)
    {
        public string Line => $"{Method} {Path} x-scope={Scope ?? "(none given)"} security={Security}";
    }

    private async Task<List<Operation>> GeneratedAsync()
    {
        using JsonDocument json = JsonDocument.Parse(await _server.Client.GetStringAsync("/openapi/v1.json"));
        return Operations(ToMap(json.RootElement));
    }

    private static List<Operation> Written()
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(RepositoryRoot.Find(), "openapi.yaml")))
            yaml.Load(reader);
        return Operations(ToMap(yaml.Documents[0].RootNode));
    }

    [Fact]
    public async Task Both_documents_give_every_operation_the_same_scope_and_security()
    {
        var generated = (await GeneratedAsync()).Select(o => o.Line).ToHashSet();
        var written = Written().Select(o => o.Line).ToHashSet();
        foreach (string line in generated.Except(written))
            output.WriteLine($"only in /openapi/v1.json: {line}");
        foreach (string line in written.Except(generated))
            output.WriteLine($"only in openapi.yaml:      {line}");
        Assert.True(generated.SetEquals(written), "openapi.yaml and /openapi/v1.json disagree on scopes or security (see output)");
    }

    [Fact]
    public async Task Every_operation_has_the_scope_of_its_row_and_401_403_when_it_needs_a_token()
    {
        var problems = new List<string>();
        foreach (var (document, operations) in new[] { ("/openapi/v1.json", await GeneratedAsync()), ("openapi.yaml", Written()) })
        {
            foreach (Operation op in operations)
            {
                if (!EndpointScopes.TryFind(op.Method, op.Path, out Scope scope))
                    problems.Add($"{document}: {op.Method} {op.Path} has no row in EndpointScopes");
                else if (op.Scope != scope.Name())
                    problems.Add($"{document}: {op.Method} {op.Path} has x-scope {op.Scope}, the table says {scope.Name()}");
                bool needsToken = scope.NeedsToken();
                if (op.Security != (needsToken ? "bearerAuth|basicAuth" : ""))
                    problems.Add($"{document}: {op.Method} {op.Path} has security '{op.Security}'");
                if (needsToken && !(op.Statuses.Contains("401") && op.Statuses.Contains("403")))
                    problems.Add($"{document}: {op.Method} {op.Path} needs a token but does not list 401 and 403");
                // A ticket's id is its credential: never a 401; a write through a read ticket is a 403.
                bool mayForbid = scope == Scope.Ticket && op.Method is "PUT" or "PATCH";
                if (!needsToken && (op.Statuses.Contains("401") || (op.Statuses.Contains("403") && !mayForbid)))
                    problems.Add($"{document}: {op.Method} {op.Path} needs no token but lists 401{(mayForbid ? "" : " or 403")}");
            }
        }
        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public async Task Both_documents_define_the_bearer_and_basic_schemes()
    {
        using JsonDocument json = JsonDocument.Parse(await _server.Client.GetStringAsync("/openapi/v1.json"));
        var yaml = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(RepositoryRoot.Find(), "openapi.yaml")))
            yaml.Load(reader);
        foreach (Map document in new[] { ToMap(json.RootElement), ToMap(yaml.Documents[0].RootNode) })
        {
            Map schemes = document.Get("components")?.Get("securitySchemes") ?? throw new Xunit.Sdk.XunitException("no securitySchemes");
            Assert.Equal("http", schemes.Get("bearerAuth")?.Scalar("type"));
            Assert.Equal("bearer", schemes.Get("bearerAuth")?.Scalar("scheme"));
            Assert.Equal("http", schemes.Get("basicAuth")?.Scalar("type"));
            Assert.Equal("basic", schemes.Get("basicAuth")?.Scalar("scheme"));
        }
    }

    private static List<Operation> Operations(Map document)
    {
        var operations = new List<Operation>();
        foreach (var (path, item) in document.Get("paths")!.Entries)
        {
            foreach (var (method, operation) in item.Entries)
            {
                if (!Methods.Contains(method))
                    continue;
                string security = string.Join('|', operation.Get("security")?.Entries.SelectMany(r => r.Value.Entries.Select(e => e.Key)) ?? []);
                operations.Add(new Operation(method.ToUpperInvariant(), path, operation.Scalar("x-scope"), security,
                    operation.Get("responses")?.Entries.Select(e => e.Key).ToHashSet() ?? []));
            }
        }
        return operations;
    }

    /// <summary>JSON and YAML as one tree: mappings (sequences keyed by index) and scalars.</summary>
    private sealed record Map(string? Value, List<(string Key, Map Value)> Entries)
    {
        public Map? Get(string key) => Entries.FirstOrDefault(e => e.Key == key).Value;
        public string? Scalar(string key) => Get(key)?.Value;
    }

    private static Map ToMap(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => new Map(null, [.. e.EnumerateObject().Select(p => (p.Name, ToMap(p.Value)))]),
        JsonValueKind.Array => new Map(null, [.. e.EnumerateArray().Select((v, i) => (i.ToString(), ToMap(v)))]),
        _ => new Map(e.ToString(), []),
    };

    private static Map ToMap(YamlNode n) => n switch
    {
        YamlMappingNode m => new Map(null, [.. m.Children.Select(c => (((YamlScalarNode)c.Key).Value!, ToMap(c.Value)))]),
        YamlSequenceNode s => new Map(null, [.. s.Children.Select((v, i) => (i.ToString(), ToMap(v)))]),
        YamlScalarNode s => new Map(s.Value, []),
        _ => new Map(null, []),
    };
}
