using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace QcowActors.Testing;

/// <summary>
/// The real server as a child process: `dotnet QcowActors.Api.dll --urls http://127.0.0.1:PORT` with
/// Storage__Directory pointing at a temp store. Started by <see cref="StartAsync"/>, which returns
/// once GET /healthz/live answers 200. Disposal kills it (use <see cref="StopAsync"/> for a graceful stop).
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private const int MaxCapturedChars = 256 * 1024;

    // Servers still running when the test host exits (a crashed or aborted run) are killed here,
    // so no orphan keeps a port or a store open.
    private static readonly ConcurrentDictionary<ServerProcess, byte> Running = new();

    static ServerProcess()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var server in Running.Keys)
            {
                server.Kill();
            }
        };
    }

    private readonly Process _process;
    private readonly TempDirectory? _ownedStore;
    private readonly Action<string>? _outputLine;
    private readonly StringBuilder _output = new();
    private long _exitedTimestamp;

    private ServerProcess(Process process, int port, string storeDirectory, TempDirectory? ownedStore, TimeSpan clientTimeout, Action<string>? outputLine)
    {
        _process = process;
        _ownedStore = ownedStore;
        _outputLine = outputLine;
        Port = port;
        StoreDirectory = storeDirectory;
        BaseUrl = $"http://127.0.0.1:{port}";
        Client = new HttpClient { BaseAddress = new Uri(BaseUrl + "/"), Timeout = clientTimeout };
        Api = new ImageApi(Client);
    }

    /// <summary>http://127.0.0.1:PORT (no trailing slash).</summary>
    public string BaseUrl { get; }

    public int Port { get; }

    public string StoreDirectory { get; }

    public int Pid => _process.Id;

    /// <summary>A client whose BaseAddress is <see cref="BaseUrl"/> + "/" (relative URIs like "images" work).</summary>
    public HttpClient Client { get; }

    /// <summary>The image API over <see cref="Client"/>.</summary>
    public ImageApi Api { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>
    /// <see cref="Stopwatch.GetTimestamp"/> when the exit was noticed (a little after the process
    /// died, so an upper bound of its death), or null while it runs.
    /// </summary>
    public long? ExitedTimestamp
    {
        get
        {
            var t = Interlocked.Read(ref _exitedTimestamp);
            return t == 0 ? null : t;
        }
    }

    /// <summary>The exit code, or null while the process runs.</summary>
    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    /// <summary>The last 256 KiB of the server's stdout and stderr.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>The path of image <paramref name="name"/> in the store.</summary>
    public string ImagePath(string name) => Path.Combine(StoreDirectory, name + ".qcow2");

    /// <summary>The absolute URL of an image's virtual disk.</summary>
    public string DataUrl(string name) => $"{BaseUrl}/images/{name}/data";

    public static async Task<ServerProcess> StartAsync(ServerOptions? options = null, CancellationToken ct = default)
    {
        options ??= new ServerOptions();
        // The free port is found by binding port 0 and releasing it; another process can take it in
        // between, so a start that fails on the port is retried on a new one.
        for (var attempt = 1; ; attempt++)
        {
            var server = Launch(options, FreePort());
            try
            {
                await server.WaitUntilLiveAsync(options.StartTimeout, ct).ConfigureAwait(false);
                return server;
            }
            catch (ServerStartException e) when (attempt < 3 && e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
            catch
            {
                await server.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    /// <summary>VmHWM: the peak resident set size of the server since it started.</summary>
    public long PeakRssBytes() => ReadStatusKilobytes("VmHWM") * 1024;

    /// <summary>VmRSS: the current resident set size.</summary>
    public long CurrentRssBytes() => ReadStatusKilobytes("VmRSS") * 1024;

    /// <summary>Kills the process (SIGKILL) and waits for it: no flush, no shutdown hooks.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
            _process.WaitForExit();
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }
        Running.TryRemove(this, out _);
    }

    /// <summary>Sends a signal with kill(1), e.g. "STOP", "CONT", "TERM"; does not wait for anything.</summary>
    public void Signal(string signal)
        => ProcessRunner.RunChecked("kill", [$"-{signal}", Pid.ToString(CultureInfo.InvariantCulture)]);

    /// <summary>Waits for the process to exit by itself and returns its exit code; throws <see cref="TimeoutException"/> (without killing it) after <paramref name="timeout"/>.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{this} did not exit within {timeout}");
        }
        _process.WaitForExit(); // drains the redirected output
        Running.TryRemove(this, out _);
        return _process.ExitCode;
    }

    /// <summary>Graceful stop: SIGTERM, then waits for the exit (killing it and throwing after <paramref name="timeout"/>). Returns the exit code.</summary>
    public async Task<int> StopAsync(TimeSpan? timeout = null)
    {
        if (!_process.HasExited)
        {
            ProcessRunner.RunChecked("kill", ["-TERM", Pid.ToString(CultureInfo.InvariantCulture)]);
        }
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Kill();
            throw new TimeoutException($"The server did not exit within {timeout ?? TimeSpan.FromSeconds(60)} of SIGTERM. Output:{Environment.NewLine}{Output}");
        }
        _process.WaitForExit(); // drains the redirected output
        Running.TryRemove(this, out _);
        return _process.ExitCode;
    }

    public ValueTask DisposeAsync()
    {
        Kill();
        Client.Dispose();
        _process.Dispose();
        _ownedStore?.Dispose();
        return ValueTask.CompletedTask;
    }

    public override string ToString() => $"server pid {Pid} at {BaseUrl}, store {StoreDirectory}";

    private static ServerProcess Launch(ServerOptions options, int port)
    {
        var dll = RepositoryLayout.ServerDll;
        var ownedStore = options.StoreDirectory is null ? new TempDirectory("qcowactors-store") : null;
        var store = options.StoreDirectory ?? ownedStore!.Path;
        var psi = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            // The content root (appsettings.json) is the working directory for `dotnet app.dll`.
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add("--urls");
        psi.ArgumentList.Add($"http://127.0.0.1:{port}");
        foreach (var argument in options.Arguments)
        {
            psi.ArgumentList.Add(argument);
        }
        psi.Environment.Remove("ASPNETCORE_URLS");
        psi.Environment.Remove("DOTNET_URLS");
        psi.Environment["Storage__Directory"] = store;
        foreach (var (key, value) in options.Environment)
        {
            psi.Environment[key] = value;
        }

        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        ServerProcess? server = null;
        process.OutputDataReceived += (_, e) => server?.Capture(e.Data);
        process.ErrorDataReceived += (_, e) => server?.Capture(e.Data);
        process.Exited += (_, _) => server?.NoteExit();
        try
        {
            process.Start();
        }
        catch
        {
            ownedStore?.Dispose();
            process.Dispose();
            throw;
        }
        server = new ServerProcess(process, port, store, ownedStore, options.ClientTimeout, options.OutputLine);
        Running.TryAdd(server, 0);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return server;
    }

    private async Task WaitUntilLiveAsync(TimeSpan timeout, CancellationToken ct)
    {
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        var lastProblem = "no answer yet";
        while (deadline.Elapsed < timeout)
        {
            if (_process.HasExited)
            {
                _process.WaitForExit();
                throw new ServerStartException($"The server exited with code {_process.ExitCode} before it was live. Output:{Environment.NewLine}{Output}");
            }
            try
            {
                using var response = await probe.GetAsync($"{BaseUrl}/healthz/live", ct).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
                lastProblem = $"GET /healthz/live answered {(int)response.StatusCode}";
            }
            catch (HttpRequestException e)
            {
                lastProblem = e.Message;
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                lastProblem = "GET /healthz/live timed out";
            }
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
        throw new ServerStartException($"The server was not live within {timeout} ({lastProblem}). Output:{Environment.NewLine}{Output}");
    }

    private void NoteExit() => Interlocked.CompareExchange(ref _exitedTimestamp, Stopwatch.GetTimestamp(), 0);

    private void Capture(string? line)
    {
        if (line is null)
        {
            return;
        }
        _outputLine?.Invoke(line);
        lock (_output)
        {
            _output.AppendLine(line);
            if (_output.Length > MaxCapturedChars)
            {
                _output.Remove(0, _output.Length - MaxCapturedChars / 2);
            }
        }
    }

    private long ReadStatusKilobytes(string field)
    {
        foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                var value = line[(field.Length + 1)..].Trim();
                return long.Parse(value.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
            }
        }
        throw new InvalidOperationException($"/proc/{Pid}/status has no {field} line");
    }

    /// <summary>A loopback port that was free a moment ago.</summary>
    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>The dotnet host running the tests (DOTNET_HOST_PATH under `dotnet test`), else `dotnet` on PATH.</summary>
    private static string DotnetHost()
    {
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host))
        {
            return host;
        }
        var current = Environment.ProcessPath;
        if (current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet")
        {
            return current;
        }
        return "dotnet";
    }
}

public sealed class ServerStartException(string message) : Exception(message);
