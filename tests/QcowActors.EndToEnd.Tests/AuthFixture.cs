using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// One server with the four test tokens, /debug/engine on, and formed as a cluster by config
/// discovery (so /bootstrap/seed-nodes is mapped; the node is only ready once bootstrap, which
/// sends no token, reached that route). Its images: "disk" (4 MiB, its first MiB written, snapshot
/// "keep" and "victim-snap"), "victim" (for DELETE). Server.Client sends the admin token.
/// </summary>
public sealed class AuthFixture : IAsyncLifetime
{
    public const string Disk = "disk";
    public const long DiskSize = 4L * 1024 * 1024;

    private ServerProcess? _server;

    public ServerProcess Server => _server ?? throw new InvalidOperationException("not started");

    public int ManagementPort { get; } = ServerProcess.FreePort();

    public string ManagementUrl => $"http://127.0.0.1:{ManagementPort.ToString(CultureInfo.InvariantCulture)}";

    public async Task InitializeAsync()
    {
        var environment = AuthTokens.Environment();
        environment["Diagnostics__EngineState"] = "true";
        environment["Cluster__Discovery"] = "config";
        environment["Cluster__Port"] = ServerProcess.FreePort().ToString(CultureInfo.InvariantCulture);
        environment["Cluster__ManagementPort"] = ManagementPort.ToString(CultureInfo.InvariantCulture);
        environment["Cluster__DiscoveryEndpoints__0"] = $"127.0.0.1:{ManagementPort.ToString(CultureInfo.InvariantCulture)}";
        environment["Cluster__StableAfter"] = "5s";
        environment["Cluster__ForwardingKey"] = ClusterKeys.NewForwardingKey();
        _server = await ServerProcess.StartAsync(new ServerOptions { Environment = environment });
        Server.Client.DefaultRequestHeaders.Authorization = AuthTokens.Header(AuthTokens.Admin, "Bearer");
        await WaitUntilReadyAsync();

        await Server.Api.CreateAsync(Disk, DiskSize);
        var data = new byte[1024 * 1024];
        Pattern.Fill(1414, 0, data);
        await Server.Api.PutAsync(Disk, 0, data);
        await Server.Api.CreateAsync("victim", "1M");
        foreach (string snapshot in new[] { "keep", "victim-snap" })
        {
            using var response = await Server.Client.PostAsync($"images/{Disk}/snapshots", new StringContent($$"""{"name":"{{snapshot}}"}"""));
            Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        }
    }

    /// <summary>Ready means the node joined its cluster, through the token-less bootstrap route.</summary>
    private async Task WaitUntilReadyAsync()
    {
        var clock = Stopwatch.StartNew();
        HttpStatusCode? last = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(90))
        {
            using (var response = await Server.Client.GetAsync("healthz/ready"))
            {
                last = response.StatusCode;
                if (last == HttpStatusCode.OK)
                    return;
            }
            await Task.Delay(200);
        }
        throw new InvalidOperationException($"the server was not ready within 90 s (last {last}); is the bootstrap route open without a token?\n{Server.Output}");
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
            await _server.DisposeAsync();
    }
}
