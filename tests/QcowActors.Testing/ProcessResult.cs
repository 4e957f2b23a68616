using System.Text;

namespace QcowActors.Testing;

/// <summary>What a finished child process left behind.</summary>
public sealed record ProcessResult(string Command, int ExitCode, byte[] StdoutBytes, string Stderr)
{
    public string Stdout => Encoding.UTF8.GetString(StdoutBytes);

    /// <summary>Stdout and stderr together, for failure messages.</summary>
    public string Output => Stderr.Length == 0 ? Stdout : $"{Stdout}{Environment.NewLine}{Stderr}";

    public override string ToString() => $"`{Command}` exited {ExitCode}:{Environment.NewLine}{Output}";
}
