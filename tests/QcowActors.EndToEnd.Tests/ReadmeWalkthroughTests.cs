using QcowActors.Testing;
using Xunit;
using Xunit.Abstractions;

namespace QcowActors.EndToEnd.Tests;

/// <summary>The README's walkthrough is a script: it must run verbatim against a fresh server.</summary>
public sealed class ReadmeWalkthroughTests(ServerFixture fixture, ITestOutputHelper output) : IClassFixture<ServerFixture>, IDisposable
{
    private const string DocumentedBaseUrl = "http://127.0.0.1:8080";

    private readonly TempDirectory _scratch = new("e2e-readme");

    [Fact]
    public async Task Readme_walkthrough_runs_verbatim_and_reads_back_what_it_wrote()
    {
        var script = ExtractWalkthrough(await File.ReadAllTextAsync(RepositoryLayout.ReadmePath));
        Assert.Contains(DocumentedBaseUrl, script);
        var path = _scratch.File("walkthrough.sh");
        await File.WriteAllTextAsync(path, script.Replace(DocumentedBaseUrl, fixture.Server.BaseUrl, StringComparison.Ordinal));

        var run = ProcessRunner.Run("bash", ["-e", path], new ProcessRunOptions { WorkingDirectory = _scratch.Path, Timeout = TimeSpan.FromMinutes(2) });
        output.WriteLine(run.Output);
        Assert.True(run.ExitCode == 0, $"the walkthrough failed: {run}");

        var lines = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal("Hello, qcow2!", lines[^1]);
        Assert.Contains(lines, l => l.Contains("\"name\":\"demo\"", StringComparison.Ordinal) || l.Contains("\"name\": \"demo\"", StringComparison.Ordinal));
        var info = await fixture.Server.Api.GetInfoAsync("demo");
        Assert.Equal(1L << 30, info.VirtualSize);
    }

    /// <summary>The first ```sh block under "## Walkthrough" (before the next "## " heading).</summary>
    internal static string ExtractWalkthrough(string readme)
    {
        var lines = readme.ReplaceLineEndings("\n").Split('\n');
        var heading = Array.FindIndex(lines, l => l.TrimEnd() == "## Walkthrough");
        Assert.True(heading >= 0, "README.md has no \"## Walkthrough\" heading");
        var i = heading + 1;
        while (i < lines.Length && lines[i].TrimEnd() != "```sh")
        {
            Assert.False(lines[i].StartsWith("## ", StringComparison.Ordinal), "the Walkthrough section has no ```sh block");
            i++;
        }
        Assert.True(i < lines.Length, "the Walkthrough section has no ```sh block");
        var end = Array.FindIndex(lines, i + 1, l => l.TrimEnd() == "```");
        Assert.True(end > i, "the walkthrough's ```sh block is not closed");
        return string.Join('\n', lines[(i + 1)..end]) + "\n";
    }

    public void Dispose() => _scratch.Dispose();
}
