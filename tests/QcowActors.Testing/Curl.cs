using System.Globalization;

namespace QcowActors.Testing;

/// <summary>The real curl binary, for tests that check what a stock client sees.</summary>
public static class Curl
{
    /// <summary>Runs curl with the given arguments (-sS added), stdout as bytes; does not check the exit code.</summary>
    public static ProcessResult Run(params string[] arguments)
        => ProcessRunner.Run("curl", ["-sS", .. arguments]);

    /// <summary>`curl -f -r first-last url`: the bytes of an inclusive range (throws unless curl exits 0).</summary>
    public static byte[] GetRange(string url, long first, long last)
        => Checked(Run("-f", "-r", $"{first.ToString(CultureInfo.InvariantCulture)}-{last.ToString(CultureInfo.InvariantCulture)}", url)).StdoutBytes;

    /// <summary>`curl -f -r first- url`: from first to the end.</summary>
    public static byte[] GetFrom(string url, long first)
        => Checked(Run("-f", "-r", $"{first.ToString(CultureInfo.InvariantCulture)}-", url)).StdoutBytes;

    /// <summary>`curl -f -o file url`: the whole resource into a file.</summary>
    public static void Download(string url, string path)
        => Checked(Run("-f", "-o", path, url));

    private static ProcessResult Checked(ProcessResult result)
        => result.ExitCode == 0 ? result : throw new InvalidOperationException($"curl failed: {result}");
}
