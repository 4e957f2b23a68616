using QcowActors.Actors.Store;

namespace QcowActors.Actors.Backing;

/// <summary>
/// Which images of the store name which file as their backing file, from the headers alone. The
/// store is scanned again when the directory changed (an image created, deleted, renamed) or the
/// last scan is older than <see cref="MaxAge"/> (a header rewritten in place, as qemu-img rebase
/// does); a file's header is read again only when its length or time changed.
/// </summary>
internal sealed class BackingIndex(string directory)
{
    private static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(1);
    private readonly SemaphoreSlim _scan = new(1, 1);
    private readonly Dictionary<string, (long Length, DateTime Written, string? Backing)> _headers = new(StringComparer.Ordinal);
    private Dictionary<string, List<string>> _users = new(StringComparer.Ordinal);
    private DateTime _directoryWritten;
    private long _scannedAt = long.MinValue;

    public async Task<IReadOnlyList<string>> UsersOfAsync(string fileName, CancellationToken ct)
    {
        await _scan.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var written = System.IO.Directory.GetLastWriteTimeUtc(directory);
            if (written != _directoryWritten || Environment.TickCount64 - _scannedAt > MaxAge.TotalMilliseconds)
            {
                _directoryWritten = written;
                _scannedAt = Environment.TickCount64;
                _users = await ScanAsync().ConfigureAwait(false);
            }
            return _users.TryGetValue(fileName, out var users) ? [.. users] : [];
        }
        finally
        {
            _scan.Release();
        }
    }

    private async Task<Dictionary<string, List<string>>> ScanAsync()
    {
        var users = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var info in new DirectoryInfo(directory).EnumerateFiles("*" + ImageNames.Extension))
        {
            string? name = ImageNames.FromFileName(info.Name);
            // Regular files only; one shorter than a v2 header holds no backing name.
            if (name is null || Io.FileKind.Of(info.FullName) != Io.FileKindValue.Regular || info.Length < 72) continue;
            seen.Add(info.Name);
            if (!_headers.TryGetValue(info.Name, out var known) || known.Length != info.Length || known.Written != info.LastWriteTimeUtc)
            {
                var header = await StoreListing.TryReadAsync(info.FullName, name).ConfigureAwait(false);
                _headers[info.Name] = known = (info.Length, info.LastWriteTimeUtc, header?.Backing);
            }
            if (known.Backing is null) continue;
            var target = BackingReference.TryResolvePath(directory, known.Backing, out _);
            if (target is null) continue;
            if (!users.TryGetValue(target.FileName, out var list)) users[target.FileName] = list = [];
            list.Add(name);
        }
        foreach (var gone in _headers.Keys.Where(k => !seen.Contains(k)).ToList()) _headers.Remove(gone);
        foreach (var list in users.Values) list.Sort(StringComparer.Ordinal);
        return users;
    }
}
