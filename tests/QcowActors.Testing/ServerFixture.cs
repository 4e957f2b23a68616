using Xunit;

namespace QcowActors.Testing;

/// <summary>
/// One server per test class (IClassFixture&lt;ServerFixture&gt;): started before the first test,
/// killed after the last. Tests share it, so each test uses its own image names.
/// </summary>
public class ServerFixture : IAsyncLifetime
{
    private ServerProcess? _server;

    public ServerProcess Server => _server ?? throw new InvalidOperationException("The server fixture is not initialized.");

    /// <summary>Options for the server; override to pass environment or arguments.</summary>
    protected virtual ServerOptions Options => new();

    public async Task InitializeAsync() => _server = await ServerProcess.StartAsync(Options);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
