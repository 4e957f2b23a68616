using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using QcowActors.Actors.Service;
using QcowActors.Api.Auth;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.Api.Tests.Auth;

/// <summary>
/// The one scope table: every endpoint the server maps has a row (a new endpoint without one fails
/// here), and README "Authentication" prints exactly the table's rows.
/// </summary>
public sealed class EndpointScopeTableTests
{
    /// <summary>Transfer tickets' data URLs: no endpoint of their own, TicketPaths serves them as their image's data path.</summary>
    private static readonly HashSet<string> MappedElsewhere = new(StringComparer.Ordinal)
    {
        "GET /tickets/{id}/data", "HEAD /tickets/{id}/data", "PUT /tickets/{id}/data", "PATCH /tickets/{id}/data",
        "OPTIONS /tickets/{id}/data", "GET /tickets/{id}/data/extents",
        "GET /tickets/{id}/data/checksum", "GET /tickets/{id}/data/checksum/algorithms",
    };

    /// <summary>Every endpoint of a host with all optional routes on (diagnostics, the bootstrap route of Cluster:Discovery), with or without tokens.</summary>
    internal static List<RouteEndpoint> MappedEndpoints(bool withTokens)
    {
        WebApplication app = BuildAllRoutes(withTokens);
        try
        {
            // Built, never started: the endpoints exist once the pipeline is composed.
            return [.. ((IEndpointRouteBuilder)app).DataSources.SelectMany(d => d.Endpoints).OfType<RouteEndpoint>()];
        }
        finally
        {
            ((IDisposable)app).Dispose();
        }
    }

    private static WebApplication BuildAllRoutes(bool withTokens)
    {
        string[] args =
        [
            "--urls=http://127.0.0.1:0",
            "--Diagnostics:EngineState=true",
            "--Cluster:Discovery=config",
            "--Cluster:DiscoveryEndpoints:0=127.0.0.1:1",
            "--Cluster:ManagementPort=1",
            "--Cluster:ForwardingKey=" + Convert.ToBase64String(new byte[32]),
            .. withTokens ? AuthTestTokens.Settings.Select(s => "--" + s) : [],
        ];
        return ApiHost.Build(args, s => s.AddQcowStore());
    }

    private static IEnumerable<string> Methods(RouteEndpoint endpoint)
        => endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["*"];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Every_mapped_endpoint_has_its_scope_from_the_table(bool withTokens)
    {
        var endpoints = MappedEndpoints(withTokens);
        Assert.True(endpoints.Count >= 20, $"only {endpoints.Count} endpoints found");
        var problems = new List<string>();
        foreach (RouteEndpoint endpoint in endpoints)
        {
            string route = RouteText.Of(endpoint.RoutePattern);
            foreach (string method in Methods(endpoint))
            {
                if (!EndpointScopes.TryFind(method, route, out _))
                    problems.Add($"{method} {route} has no row in src/Api/Auth/EndpointScopes.cs (and README \"Authentication\")");
            }
            if (endpoint.Metadata.GetMetadata<EndpointScope>() is not { Listed: true })
                problems.Add($"{endpoint.DisplayName} ({route}) carries no scope: map it inside ApiHost's scoped group");
        }
        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public void Every_row_of_the_table_is_mapped_or_mapped_by_another_part_of_issue_14()
    {
        var mapped = MappedEndpoints(withTokens: false)
            .SelectMany(e => Methods(e).Select(m => $"{m} {RouteText.Of(e.RoutePattern)}"))
            .ToHashSet();
        var unmapped = EndpointScopes.All.Select(r => $"{r.Method} {r.Route}").Where(r => !mapped.Contains(r) && !MappedElsewhere.Contains(r)).ToList();
        Assert.True(unmapped.Count == 0, "rows for endpoints that do not exist: " + string.Join(", ", unmapped));
    }

    [Fact]
    public void Endpoints_needing_a_token_carry_their_policy_only_when_tokens_are_configured()
    {
        foreach (bool withTokens in new[] { false, true })
        {
            foreach (RouteEndpoint endpoint in MappedEndpoints(withTokens))
            {
                Scope scope = endpoint.Metadata.GetMetadata<EndpointScope>()!.Scope;
                var policies = endpoint.Metadata.OfType<Microsoft.AspNetCore.Authorization.IAuthorizeData>().Select(a => a.Policy).ToList();
                bool anonymous = endpoint.Metadata.GetMetadata<Microsoft.AspNetCore.Authorization.IAllowAnonymous>() is not null;
                if (!withTokens)
                {
                    Assert.Empty(policies);
                    Assert.False(anonymous);
                }
                else if (scope.NeedsToken())
                {
                    Assert.Equal([scope.PolicyName()], policies);
                }
                else
                {
                    Assert.True(anonymous, $"{endpoint.DisplayName} needs no token but is not AllowAnonymous");
                }
            }
        }
    }

    [Fact]
    public void Readme_table_and_code_table_agree()
    {
        var readme = ReadmeScopeTable.Read(Path.Combine(Support.RepositoryRoot.Find(), "README.md")).Select(r => r.ToString()).ToList();
        var code = EndpointScopes.All.Select(r => new ScopeRow(r.Method, r.Route, r.Scope.Name()).ToString()).ToList();
        Assert.Equal(readme.Count, readme.Distinct().Count());
        var onlyReadme = readme.Except(code).ToList();
        var onlyCode = code.Except(readme).ToList();
        Assert.True(onlyReadme.Count == 0 && onlyCode.Count == 0,
            "README \"Authentication\" and EndpointScopes differ:\n"
            + string.Join('\n', onlyReadme.Select(r => "  only in README: " + r).Concat(onlyCode.Select(r => "  only in code:   " + r))));
    }

    [Fact]
    public void Route_text_ignores_group_slashes_and_keeps_catch_alls()
    {
        Assert.Equal("/images", RouteText.Of(Microsoft.AspNetCore.Routing.Patterns.RoutePatternFactory.Parse("/images/")));
        Assert.Equal("/swagger/{**path}", RouteText.Of(Microsoft.AspNetCore.Routing.Patterns.RoutePatternFactory.Parse("/swagger/{**path}")));
        Assert.Equal("/openapi/{documentName}.json", RouteText.Of(Microsoft.AspNetCore.Routing.Patterns.RoutePatternFactory.Parse("/openapi/{documentName:minlength(1)}.json")));
    }
}
