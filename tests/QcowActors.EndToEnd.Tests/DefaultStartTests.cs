using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// `dotnet run --project src/Api` with nothing configured: ready on http://127.0.0.1:8080 within
/// seconds, the store in ./data, and nothing listening beyond loopback (issue 5 keeps this default).
/// </summary>
public sealed class DefaultStartTests(ITestOutputHelper output)
{
    private const int DocumentedPort = 8080;

    [Fact]
    public async Task Dotnet_run_with_an_empty_environment_is_ready_on_loopback_8080_within_10_seconds()
    {
        AssertPortFree(DocumentedPort);
        using var cwd = new TempDirectory("e2e-default");
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = cwd.Path,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "run", "--project", Path.Combine(RepositoryLayout.Root, "src", "Api"), "-c", RepositoryLayout.BuildConfiguration, "--no-build" })
            psi.ArgumentList.Add(a);
        // An empty environment but for what finds dotnet and its home: no URLS, no Storage__*, no ASPNETCORE_*.
        psi.Environment.Clear();
        foreach (var key in new[] { "PATH", "HOME", "DOTNET_ROOT", "DOTNET_CLI_HOME", "TMPDIR" })
            if (Environment.GetEnvironmentVariable(key) is { } value) psi.Environment[key] = value;

        using var process = Process.Start(psi)!;
        var log = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var clock = Stopwatch.StartNew();
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            HttpStatusCode? status = null;
            while (clock.Elapsed < TimeSpan.FromSeconds(10) && !process.HasExited)
            {
                try
                {
                    using var response = await client.GetAsync($"http://127.0.0.1:{DocumentedPort}/healthz/ready");
                    status = response.StatusCode;
                    if (status == HttpStatusCode.OK) break;
                }
                catch (HttpRequestException)
                {
                }
                await Task.Delay(100);
            }
            output.WriteLine($"ready after {clock.Elapsed.TotalSeconds:F1} s");
            Assert.True(status == HttpStatusCode.OK, $"not ready within 10 s (last status {status}); output:\n{log}");
            Assert.True(Directory.Exists(Path.Combine(cwd.Path, "data")), "the store ./data was not created in the working directory");

            // Every socket the server listens on is loopback.
            var listening = ProcessRunner.RunChecked("ss", ["-H", "-ltnp"]).Stdout
                .Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => l.Contains("QcowActors.Api", StringComparison.Ordinal) || l.Contains($"pid={process.Id},", StringComparison.Ordinal))
                .ToList();
            output.WriteLine(string.Join('\n', listening));
            Assert.NotEmpty(listening);
            foreach (var line in listening)
            {
                string local = line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3];
                Assert.True(local.StartsWith("127.0.0.1:", StringComparison.Ordinal) || local.StartsWith("[::1]:", StringComparison.Ordinal),
                    $"the server listens beyond loopback: {line}");
            }
        }
        finally
        {
            KillTree(process);
        }
    }

    private static void AssertPortFree(int port)
    {
        try
        {
            using var probe = new TcpListener(IPAddress.Loopback, port);
            probe.Start();
        }
        catch (SocketException e)
        {
            Assert.Fail($"port {port} (the documented default) is taken on this machine, so the default start cannot be checked: {e.Message}");
        }
    }

    private static void KillTree(Process process)
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
        }
    }
}
