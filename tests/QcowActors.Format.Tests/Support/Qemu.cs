using System.ComponentModel;
using System.Diagnostics;
using System.Text.Json;

namespace QcowActors.Format.Tests.Support;

/// <summary>Result of one qemu-img / qemu-io run.</summary>
internal sealed record QemuResult(int ExitCode, string StdOut, string StdErr)
{
    public JsonElement Json => JsonDocument.Parse(StdOut).RootElement;
}

/// <summary>
/// Runs QEMU's tools, the oracle for these tests. A missing tool fails the test loudly: a skipped
/// interop test would hide that nothing was checked.
/// </summary>
internal static class Qemu
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    public static QemuResult Img(params string[] args) => Run("qemu-img", args);

    public static QemuResult Io(params string[] args) => Run("qemu-io", args);

    /// <summary>Runs and asserts exit code 0.</summary>
    public static QemuResult ImgOk(params string[] args) => Ok(Img(args), "qemu-img", args);

    public static QemuResult IoOk(params string[] args) => Ok(Io(args), "qemu-io", args);

    private static QemuResult Ok(QemuResult result, string tool, string[] args)
    {
        if (result.ExitCode != 0)
            Assert.Fail($"{tool} {string.Join(' ', args)} exited {result.ExitCode}: {result.StdErr}{result.StdOut}");
        return result;
    }

    private static QemuResult Run(string tool, string[] args)
    {
        var start = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
            start.ArgumentList.Add(arg);
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{tool} did not start");
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException(
                $"{tool} is not installed or not on PATH; these interop tests need QEMU 7.2 (Debian: apt-get install qemu-utils)", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(Timeout))
            {
                process.Kill();
                Assert.Fail($"{tool} {string.Join(' ', args)} did not finish within {Timeout}");
            }
            return new QemuResult(process.ExitCode, stdout.Result, stderr.Result);
        }
    }

    /// <summary>qemu-img check --output=json: asserts exit 0 and no corruptions, leaks or check errors.</summary>
    public static void AssertClean(string image)
    {
        var result = Img("check", "--output=json", image);
        Assert.True(result.ExitCode == 0, $"qemu-img check exited {result.ExitCode}: {result.StdOut}{result.StdErr}");
        var json = result.Json;
        foreach (string key in new[] { "corruptions", "leaks", "check-errors" })
        {
            if (json.TryGetProperty(key, out var value))
                Assert.True(value.GetInt64() == 0, $"qemu-img check reports {key}: {result.StdOut}");
        }
    }

    public static JsonElement Info(string image) => ImgOk("info", "--output=json", image).Json;
}
