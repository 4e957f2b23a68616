using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;

namespace QcowActors.Api.Tests.Support;

/// <summary>
/// The API over the real engine (AddQcowStore) on a real Kestrel listener on 127.0.0.1 (port chosen
/// by the OS) with a temporary store directory. The engine's file system is the real one, or the
/// one given (e.g. a <see cref="FaultyFileSystem"/> wrapping it).
/// </summary>
internal sealed class ApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ApiServer(WebApplication app, string storeDirectory, CompletedRequests requests)
    {
        _app = app;
        StoreDirectory = storeDirectory;
        Requests = requests;
        BaseAddress = new Uri(app.Urls.First());
        Client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public Uri BaseAddress { get; }
    public HttpClient Client { get; }
    public string StoreDirectory { get; }
    /// <summary>Requests the server has finished with.</summary>
    public CompletedRequests Requests { get; }
    public IServiceProvider Services => _app.Services;

    /// <summary>The file of an image in the store directory.</summary>
    public string ImagePath(string name) => Path.Combine(StoreDirectory, name + ".qcow2");

    /// <summary>Starts the server; settings are configuration keys, e.g. "Storage:MaxWriteChunk=2097152".</summary>
    public static Task<ApiServer> StartWithEngineAsync(params string[] settings) => StartWithEngineAsync(null, settings);

    /// <summary>Starts the server with the engine doing its I/O through <paramref name="fileSystem"/> (null: the real DiskFileSystem).</summary>
    public static async Task<ApiServer> StartWithEngineAsync(IImageFileSystem? fileSystem, params string[] settings)
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
        var requests = new CompletedRequests();
        WebApplication app = ApiHost.Build(args, services =>
        {
            // AddQcowStore adds DiskFileSystem only when no file system is registered yet.
            if (fileSystem is not null)
                services.AddSingleton(fileSystem);
            services.AddQcowStore();
            services.AddSingleton<IStartupFilter>(requests);
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
        return new ApiServer(app, store, requests);
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
            // A file still held open by a stopping engine (or a store directory a test removed) is not the test's failure.
        }
    }
}
