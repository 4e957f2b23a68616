namespace QcowActors.Cluster.Tests;

/// <summary>
/// Every line one node process printed, with the monotonic time it reached the test, kept whole
/// (ServerProcess.Output keeps only a tail) and copied to a file for the post-mortem of a failed run.
/// </summary>
internal sealed class NodeLog : IDisposable
{
    private readonly List<(long At, string Line)> _lines = [];
    private readonly StreamWriter _file;

    public NodeLog(string path)
    {
        Path = path;
        _file = new StreamWriter(path) { AutoFlush = false };
    }

    public string Path { get; }

    public void Add(string line)
    {
        var at = Monotonic.Now;
        lock (_lines)
        {
            _lines.Add((at, line));
            _file.WriteLine(line);
            if (_lines.Count % 64 == 0)
            {
                _file.Flush();
            }
        }
    }

    /// <summary>The lines containing <paramref name="text"/> that arrived at or after <paramref name="fromNs"/>.</summary>
    public IReadOnlyList<(long At, string Line)> Matching(string text, long fromNs = long.MinValue)
    {
        lock (_lines)
        {
            return _lines.Where(l => l.At >= fromNs && l.Line.Contains(text, StringComparison.Ordinal)).ToList();
        }
    }

    public void Flush()
    {
        lock (_lines)
        {
            _file.Flush();
        }
    }

    public void Dispose()
    {
        lock (_lines)
        {
            _file.Dispose();
        }
    }
}
