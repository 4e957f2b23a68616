using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using QcowActors.Actors.Service;

namespace QcowActors.Api.Tests.Support;

/// <summary>
/// The API on a real Kestrel listener on 127.0.0.1 (port chosen by the OS) with a temporary store
/// directory, backed either by the real engine or by <see cref="InMemoryImageService"/>.
/// </summary>
internal sealed class ApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ApiServer(WebApplication app, string storeDirectory, InMemoryImageService? memory)
    {
        _app = app;
        StoreDirectory = storeDirectory;
        Memory = memory;
        BaseAddress = new Uri(app.Urls.First());
        Client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public Uri BaseAddress { get; }
    public HttpClient Client { get; }
    public string StoreDirectory { get; }
    /// <summary>The in-memory store, when the server runs on one.</summary>
    public InMemoryImageService? Memory { get; }
    public IServiceProvider Services => _app.Services;

    public static Task<ApiServer> StartWithEngineAsync(params string[] settings)
        => StartAsync(null, settings);

    public static Task<ApiServer> StartInMemoryAsync(params string[] settings)
        => StartAsync(new InMemoryImageService(), settings);

    private static async Task<ApiServer> StartAsync(InMemoryImageService? memory, string[] settings)
    {
        string store = Path.Combine(Path.GetTempPath(), "qcowactors-api-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(store);
        string[] args =
        [
            "--urls=http://127.0.0.1:0",
            $"--Storage:Directory={store}",
            "--Logging:LogLevel:Default=Warning",
            .. settings.Select(s => "--" + s),
        ];
        WebApplication app = ApiHost.Build(args, services =>
        {
            if (memory is null)
                services.AddQcowStore();
            else
                services.AddSingleton<IImageService>(memory);
        });
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            Directory.Delete(store, recursive: true);
            throw;
        }
        return new ApiServer(app, store, memory);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(StoreDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A file still held open by a stopping engine is not the test's failure.
        }
    }
}
