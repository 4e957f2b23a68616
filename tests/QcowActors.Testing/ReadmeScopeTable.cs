namespace QcowActors.Testing;

/// <summary>
/// The endpoint/scope table of README.md (section "Authentication"), parsed from the markdown: the
/// table whose header is | Method | Path | Scope |, one method per row, cells possibly in backticks.
/// </summary>
public static class ReadmeScopeTable
{
    public static IReadOnlyList<ScopeRow> Read(string? readmePath = null)
    {
        var lines = File.ReadAllLines(readmePath ?? RepositoryLayout.ReadmePath);
        var header = Array.FindIndex(lines, l => Cells(l) is ["Method", "Path", "Scope"]);
        if (header < 0)
        {
            throw new InvalidOperationException("README.md has no table with the header | Method | Path | Scope |");
        }
        var rows = new List<ScopeRow>();
        for (var i = header + 2; i < lines.Length && lines[i].TrimStart().StartsWith('|'); i++)
        {
            if (Cells(lines[i]) is not [var method, var route, var scope])
            {
                throw new InvalidOperationException($"README.md line {i + 1} is not a row of three cells: {lines[i]}");
            }
            rows.Add(new ScopeRow(method.ToUpperInvariant(), route, scope.ToLowerInvariant()));
        }
        return rows;
    }

    private static string[] Cells(string line)
    {
        var trimmed = line.Trim();
        if (!trimmed.StartsWith('|') || !trimmed.EndsWith('|'))
        {
            return [];
        }
        return [.. trimmed[1..^1].Split('|').Select(c => c.Trim().Trim('`').Trim())];
    }
}
