using System.ComponentModel;
using System.Diagnostics;

namespace QcowActors.Testing;

/// <summary>Runs a program with an argument list (no shell quoting), capturing its output.</summary>
public static class ProcessRunner
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    /// <summary>Runs the program and returns whatever exit code it had.</summary>
    public static ProcessResult Run(string program, IEnumerable<string> arguments, ProcessRunOptions? options = null)
        // RunAsync never resumes on the caller's context (ConfigureAwait(false)), so blocking here cannot deadlock.
        => RunAsync(program, arguments, options).GetAwaiter().GetResult();

    /// <summary>Runs the program; throws with its output unless the exit code is one of <paramref name="expectedExitCodes"/> (default: 0).</summary>
    public static ProcessResult RunChecked(string program, IEnumerable<string> arguments, ProcessRunOptions? options = null, params int[] expectedExitCodes)
    {
        var result = Run(program, arguments, options);
        var expected = expectedExitCodes.Length == 0 ? [0] : expectedExitCodes;
        if (!expected.Contains(result.ExitCode))
        {
            throw new InvalidOperationException($"Unexpected exit code {result.ExitCode} (expected {string.Join(" or ", expected)}) from {result}");
        }
        return result;
    }

    public static async Task<ProcessResult> RunAsync(string program, IEnumerable<string> arguments, ProcessRunOptions? options = null, CancellationToken ct = default)
    {
        options ??= new ProcessRunOptions();
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            psi.ArgumentList.Add(argument);
        }
        if (options.WorkingDirectory is not null)
        {
            psi.WorkingDirectory = options.WorkingDirectory;
        }
        foreach (var (key, value) in options.Environment)
        {
            psi.Environment[key] = value;
        }
        var command = FormatCommand(program, psi.ArgumentList);

        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"Cannot start `{program}` ({e.Message}). Is it installed? scripts/test.sh installs the tools the tests need.", e);
        }

        var stdout = new MemoryStream();
        var stdoutTask = process.StandardOutput.BaseStream.CopyToAsync(stdout, ct);
        var stderrTask = process.StandardError.ReadToEndAsync(ct);
        try
        {
            if (options.Stdin is { } stdin)
            {
                await process.StandardInput.BaseStream.WriteAsync(stdin, ct).ConfigureAwait(false);
            }
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The program exited without reading all of its input; its exit code tells the story.
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(options.Timeout ?? DefaultTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            var partial = new ProcessResult(command, -1, stdout.ToArray(), await stderrTask.ConfigureAwait(false));
            if (ct.IsCancellationRequested)
            {
                throw;
            }
            throw new TimeoutException($"Killed after {options.Timeout ?? DefaultTimeout}: {partial}");
        }
        await stdoutTask.ConfigureAwait(false);
        return new ProcessResult(command, process.ExitCode, stdout.ToArray(), await stderrTask.ConfigureAwait(false));
    }

    internal static string FormatCommand(string program, IEnumerable<string> arguments)
        => string.Join(' ', new[] { program }.Concat(arguments).Select(Quote));

    private static string Quote(string argument)
        => argument.Length > 0 && argument.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,@%+".Contains(c))
            ? argument
            : "'" + argument.Replace("'", "'\\''") + "'";
}

public sealed record ProcessRunOptions
{
    public string? WorkingDirectory { get; init; }
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();
    public byte[]? Stdin { get; init; }
    public TimeSpan? Timeout { get; init; }
}
