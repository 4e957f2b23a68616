using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace QcowActors.Api.Tests.Support;

/// <summary>
/// A request the server has finished with: its handler returned or threw, and nothing of it runs any
/// more. Status is the response's status at that point, which was never sent when Aborted is true.
/// </summary>
internal sealed record CompletedRequest(string Method, string Path, int Status, bool Aborted);

/// <summary>
/// Records each request when the server is done with it (outermost middleware, added by a startup
/// filter), so a test can wait for "the server has finished handling that upload" instead of
/// sleeping after a client hung up.
/// </summary>
internal sealed class CompletedRequests : IStartupFilter
{
    private readonly Lock _lock = new();
    private readonly List<CompletedRequest> _done = [];
    private readonly List<(Func<CompletedRequest, bool> Match, TaskCompletionSource<CompletedRequest> Signal)> _waiting = [];

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(async (HttpContext context, RequestDelegate handler) =>
        {
            try
            {
                await handler(context);
            }
            finally
            {
                Add(new CompletedRequest(context.Request.Method, context.Request.Path.Value ?? "",
                    context.Response.StatusCode, context.RequestAborted.IsCancellationRequested));
            }
        });
        next(app);
    };

    /// <summary>The first finished request with this method and path (waits for it up to <paramref name="timeout"/>).</summary>
    public async Task<CompletedRequest> WaitForAsync(string method, string path, TimeSpan? timeout = null)
    {
        bool Match(CompletedRequest r) => r.Method == method && r.Path == path;
        var signal = new TaskCompletionSource<CompletedRequest>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_done.FirstOrDefault(Match) is { } done)
                return done;
            _waiting.Add((Match, signal));
        }
        try
        {
            return await signal.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"the server did not finish {method} {path}; finished: {string.Join(", ", Snapshot())}");
        }
    }

    /// <summary>Every request finished so far.</summary>
    public IReadOnlyList<CompletedRequest> All => Snapshot();

    private IReadOnlyList<CompletedRequest> Snapshot()
    {
        lock (_lock)
            return [.. _done];
    }

    private void Add(CompletedRequest request)
    {
        List<TaskCompletionSource<CompletedRequest>> ready;
        lock (_lock)
        {
            _done.Add(request);
            ready = [.. _waiting.Where(w => w.Match(request)).Select(w => w.Signal)];
            _waiting.RemoveAll(w => w.Match(request));
        }
        foreach (var signal in ready)
            signal.TrySetResult(request);
    }
}
