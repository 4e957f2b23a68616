using System.Net;
using System.Net.Http.Headers;

namespace QcowActors.Cluster.Tests;

/// <summary>
/// The write load of the scenarios: one writer per image, each sending 4 KiB flushed PUTs
/// (?flush=y) one after another, round-robin over the nodes in rotation, until the write is
/// acknowledged. The image's model learns a write only when it is acknowledged. Client rule: a
/// broken or refused connection to a node the scenario marked as leaving (killed, stopping)
/// takes that node out of the rotation and the same write goes to another node; anything else
/// that is not a 2xx (error status, timeout) is a failure, recorded, and the write is retried.
/// </summary>
internal sealed class LoadClient : IAsyncDisposable
{
    public const string NodeHeader = "X-QcowActors-Node";

    private readonly IReadOnlyList<ImageModel> _images;
    private readonly LoadOptions _options;
    private readonly HttpClient _http;
    private readonly List<NodeProcess> _rotation;
    private readonly HashSet<int> _leaving = [];
    private readonly List<WriteAttempt> _attempts = [];
    private readonly CancellationTokenSource _stopping = new();
    private long _drainDeadlineNs = long.MaxValue;
    private long _turn;
    private Task[] _writers = [];

    public LoadClient(IReadOnlyList<ImageModel> images, IEnumerable<NodeProcess> nodes, LoadOptions? options = null)
    {
        _images = images;
        _options = options ?? new LoadOptions();
        _rotation = nodes.ToList();
        _http = new HttpClient(new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(2),
            UseProxy = false,
            AllowAutoRedirect = false,
        })
        { Timeout = Timeout.InfiniteTimeSpan };
    }

    public long StartedNs { get; private set; }

    /// <summary>A snapshot of every attempt so far.</summary>
    public IReadOnlyList<WriteAttempt> Attempts
    {
        get
        {
            lock (_attempts)
            {
                return _attempts.ToList();
            }
        }
    }

    public IReadOnlyList<NodeProcess> Rotation
    {
        get
        {
            lock (_rotation)
            {
                return _rotation.ToList();
            }
        }
    }

    /// <summary>Every attempt as CSV (times in seconds after <paramref name="originNs"/>), for the post-mortem of a failed scenario.</summary>
    public void WriteCsv(string path, long originNs)
    {
        using var writer = new StreamWriter(path);
        writer.WriteLine("start_s,end_s,image,sequence,offset,sent_to,sent_to_pid,executed_by,status,outcome,error");
        foreach (var a in Attempts.OrderBy(a => a.StartNs))
        {
            var error = a.Error?.Replace('"', '\'') ?? "";
            writer.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{(a.StartNs - originNs) / 1e9:F4},{(a.EndNs - originNs) / 1e9:F4},{a.Image},{a.Sequence},{a.Offset},node{a.SentToIndex},{a.SentToPid},{a.ExecutedBy},{a.Status},{a.Outcome},\"{error}\""));
        }
    }

    public void Start()
    {
        StartedNs = Monotonic.Now;
        _writers = _images.Select(image => Task.Run(() => WriteLoopAsync(image))).ToArray();
    }

    /// <summary>The node is being killed or stopped: a failed connection to it sends the write elsewhere.</summary>
    public void MarkLeaving(NodeProcess node)
    {
        lock (_rotation)
        {
            _leaving.Add(node.Pid);
        }
    }

    /// <summary>Takes the node out of the rotation (as a load balancer does with a node that stopped answering its probes).</summary>
    public void Remove(NodeProcess node)
    {
        lock (_rotation)
        {
            _rotation.RemoveAll(n => n.Pid == node.Pid);
        }
    }

    /// <summary>Polls the attempts until <paramref name="condition"/> holds; false after <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitUntilAsync(Func<IReadOnlyList<WriteAttempt>, bool> condition, TimeSpan timeout)
    {
        var deadline = Monotonic.Now + Monotonic.Ns(timeout);
        while (Monotonic.Now < deadline)
        {
            if (condition(Attempts))
            {
                return true;
            }
            await Task.Delay(100);
        }
        return condition(Attempts);
    }

    /// <summary>
    /// Stops starting new writes; a write still unacknowledged keeps being retried for up to
    /// <paramref name="drain"/>, then is abandoned (its block may hold either content).
    /// </summary>
    public async Task StopAsync(TimeSpan? drain = null)
    {
        Interlocked.Exchange(ref _drainDeadlineNs, Monotonic.Now + Monotonic.Ns(drain ?? TimeSpan.FromSeconds(30)));
        await _stopping.CancelAsync();
        await Task.WhenAll(_writers);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await StopAsync(TimeSpan.Zero);
        }
        _http.Dispose();
        _stopping.Dispose();
    }

    private async Task WriteLoopAsync(ImageModel image)
    {
        while (!_stopping.IsCancellationRequested)
        {
            var write = image.Next();
            if (await WriteUntilAcknowledgedAsync(write))
            {
                image.Acknowledge(write);
            }
            else
            {
                image.Abandon(write);
                return;
            }
            await PauseAsync(_options.Pace);
        }
    }

    private async Task<bool> WriteUntilAcknowledgedAsync(PendingWrite write)
    {
        while (true)
        {
            var node = NextNode();
            if (node is null)
            {
                if (Monotonic.Now > Interlocked.Read(ref _drainDeadlineNs))
                {
                    return false;
                }
                await Task.Delay(100);
                continue;
            }
            var attempt = await SendAsync(write, node);
            lock (_attempts)
            {
                _attempts.Add(attempt);
            }
            switch (attempt.Outcome)
            {
                case AttemptOutcome.Acknowledged:
                    return true;
                case AttemptOutcome.Redirected:
                    Remove(node);
                    continue;
            }
            if (Monotonic.Now > Interlocked.Read(ref _drainDeadlineNs))
            {
                return false;
            }
            await Task.Delay(_options.RetryDelay);
        }
    }

    private NodeProcess? NextNode()
    {
        lock (_rotation)
        {
            return _rotation.Count == 0 ? null : _rotation[(int)(_turn++ % _rotation.Count)];
        }
    }

    private bool IsLeaving(NodeProcess node)
    {
        lock (_rotation)
        {
            return _leaving.Contains(node.Pid);
        }
    }

    private async Task<WriteAttempt> SendAsync(PendingWrite write, NodeProcess node)
    {
        var start = Monotonic.Now;
        using var content = new ByteArrayContent(write.Data);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.ContentRange = new ContentRangeHeaderValue(write.Offset, write.Offset + write.Data.Length - 1);
        using var request = new HttpRequestMessage(HttpMethod.Put, $"{node.BaseUrl}/images/{write.Image}/data?flush=y") { Content = content };
        using var timeout = new CancellationTokenSource(_options.RequestTimeout);
        WriteAttempt Attempt(string? executedBy, int status, AttemptOutcome outcome, string? error)
            => new(write.Image, write.Sequence, write.Offset, node.Index, node.Address, node.Pid, executedBy, status, outcome, error, start, Monotonic.Now);
        try
        {
            using var response = await _http.SendAsync(request, timeout.Token);
            var executedBy = response.Headers.TryGetValues(NodeHeader, out var values) ? values.FirstOrDefault() : null;
            if (response.IsSuccessStatusCode)
            {
                await response.Content.ReadAsByteArrayAsync(timeout.Token);
                return Attempt(executedBy, (int)response.StatusCode, AttemptOutcome.Acknowledged, null);
            }
            var body = await response.Content.ReadAsStringAsync(timeout.Token);
            return Attempt(executedBy, (int)response.StatusCode, AttemptOutcome.Failed, Shorten(body));
        }
        catch (HttpRequestException e) when (IsLeaving(node))
        {
            return Attempt(null, 0, AttemptOutcome.Redirected, $"{e.HttpRequestError}: {e.Message}");
        }
        catch (HttpRequestException e)
        {
            return Attempt(null, 0, AttemptOutcome.Failed, $"{e.HttpRequestError}: {e.Message}");
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return Attempt(null, 0, AttemptOutcome.Failed, $"no answer within {_options.RequestTimeout.TotalSeconds} s");
        }
        catch (IOException e) when (IsLeaving(node))
        {
            return Attempt(null, 0, AttemptOutcome.Redirected, e.Message);
        }
        catch (IOException e)
        {
            return Attempt(null, 0, AttemptOutcome.Failed, e.Message);
        }
    }

    private async Task PauseAsync(TimeSpan pause)
    {
        try
        {
            await Task.Delay(pause, _stopping.Token);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static string Shorten(string text) => text.Length <= 300 ? text : text[..300] + "...";
}

internal sealed record LoadOptions
{
    /// <summary>A request with no answer after this long is a failure (and is retried).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Between two writes of one image.</summary>
    public TimeSpan Pace { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Before retrying a failed write.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(250);
}
