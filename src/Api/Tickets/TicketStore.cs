using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;

namespace QcowActors.Api.Tickets;

/// <summary>
/// Tickets live as small files in the store's <c>.tickets</c> folder, so every node of a cluster
/// (they share the store) knows every ticket. A file is named after the SHA-256 of its ticket's id:
/// who can read the store learns no usable id. Lookups are cached for at most
/// <see cref="CacheFor"/>, so a ticket deleted through another node stops working within that
/// time (at once through this one). Writes are atomic (temp file, rename) and not fsynced: a
/// ticket lost in a crash is asked for again.
/// </summary>
public sealed class TicketStore
{
    public const string Folder = ".tickets";
    /// <summary>Live tickets the store holds at most: each is a file, and ids are handed to whoever has a write token.</summary>
    public const int MaxTickets = 10_000;
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan MaxLifetime = TimeSpan.FromDays(7);
    private const int IdBytes = 16;

    private readonly string _folder;
    private readonly TimeProvider _clock;
    private readonly ConcurrentDictionary<string, (TransferTicket Ticket, long LoadedAt)> _cache = new(StringComparer.Ordinal);

    public TicketStore(IOptions<StoreOptions> store, TimeProvider clock)
    {
        _folder = Path.Combine(store.Value.Directory, Folder);
        _clock = clock;
    }

    /// <summary>An id as handed out: 32 lowercase hex digits (128 random bits).</summary>
    public static bool IsWellFormed(ReadOnlySpan<char> id)
    {
        if (id.Length != 2 * IdBytes) return false;
        foreach (char c in id)
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c)) return false;
        return true;
    }

    public async Task<(string Id, TransferTicket Ticket)> CreateAsync(string image, TicketScope scope, TimeSpan lifetime, CancellationToken ct,
        string? bitmap = null, string? snapshot = null)
    {
        EnsureFolder();
        int live = SweepExpired();
        if (live >= MaxTickets)
            throw new ImageException(ImageError.Unavailable,
                $"the store holds {live} live transfer tickets, the most it keeps ({MaxTickets}); delete tickets that are done, or wait for them to expire");
        string id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(IdBytes));
        var ticket = new TransferTicket(image, scope, _clock.GetUtcNow() + lifetime, bitmap, snapshot);
        string temp = Path.Combine(_folder, $".tmp-{Guid.NewGuid():N}");
        try
        {
            await File.WriteAllBytesAsync(temp, JsonSerializer.SerializeToUtf8Bytes(new TicketFile(ticket.Image, ticket.Scope.ToString().ToLowerInvariant(),
                ticket.Expires.ToUnixTimeMilliseconds(), ticket.Bitmap, ticket.Snapshot)), ct).ConfigureAwait(false);
            File.SetLastWriteTimeUtc(temp, ticket.Expires.UtcDateTime);
            File.Move(temp, PathOf(Digest(id)), overwrite: false);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        return (id, ticket);
    }

    /// <summary>The live ticket with this id, or null (unknown, malformed, expired or deleted).</summary>
    public async ValueTask<TransferTicket?> FindAsync(string id, CancellationToken ct)
    {
        if (!IsWellFormed(id)) return null;
        string digest = Digest(id);
        var now = _clock.GetUtcNow();
        if (_cache.TryGetValue(digest, out var cached) && Environment.TickCount64 - cached.LoadedAt < CacheFor.TotalMilliseconds)
            return cached.Ticket.IsExpired(now) ? Forget(digest) : cached.Ticket;
        var ticket = await ReadAsync(digest, ct).ConfigureAwait(false);
        if (ticket is null || ticket.IsExpired(now))
        {
            Forget(digest);
            if (ticket is not null) TryDelete(PathOf(digest));
            return null;
        }
        if (_cache.Count >= 2 * MaxTickets) _cache.Clear(); // entries of tickets deleted elsewhere are never looked up again
        _cache[digest] = (ticket, Environment.TickCount64);
        return ticket;
    }

    /// <summary>Deletes the image's ticket; false when there is no such ticket for that image.</summary>
    public async Task<bool> DeleteAsync(string image, string id, CancellationToken ct)
    {
        if (!IsWellFormed(id)) return false;
        string digest = Digest(id);
        var ticket = await ReadAsync(digest, ct).ConfigureAwait(false);
        Forget(digest);
        if (ticket is null || ticket.Image != image) return false;
        TryDelete(PathOf(digest));
        return !ticket.IsExpired(_clock.GetUtcNow());
    }

    private TransferTicket? Forget(string digest)
    {
        _cache.TryRemove(digest, out _);
        return null;
    }

    private async Task<TransferTicket?> ReadAsync(string digest, CancellationToken ct)
    {
        string path = PathOf(digest);
        // Regular files only: whatever else sits in the folder is no ticket (and a FIFO would block the read).
        if (FileKind.Of(path) != FileKindValue.Regular) return null;
        try
        {
            var file = JsonSerializer.Deserialize<TicketFile>(await File.ReadAllBytesAsync(path, ct).ConfigureAwait(false));
            return file is { Image: { } image, Scope: "read" or "write" }
                ? new TransferTicket(image, file.Scope == "write" ? TicketScope.Write : TicketScope.Read, DateTimeOffset.FromUnixTimeMilliseconds(file.ExpiresMs),
                    file.Bitmap, file.Snapshot)
                : null;
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException or ArgumentOutOfRangeException)
        {
            return null; // gone meanwhile, or not a ticket this server wrote
        }
    }

    /// <summary>
    /// Removes expired ticket files; returns how many live ones remain. A ticket file's modification
    /// time is its expiry, so the sweep reads the directory only, not every file.
    /// </summary>
    private int SweepExpired()
    {
        var now = _clock.GetUtcNow().UtcDateTime;
        int live = 0;
        foreach (var file in new DirectoryInfo(_folder).EnumerateFiles())
        {
            if (file.Name.StartsWith('.')) continue;
            if (file.LastWriteTimeUtc <= now) TryDelete(file.FullName);
            else live++;
        }
        return live;
    }

    private void EnsureFolder()
    {
        var kind = FileKind.Of(_folder);
        if (kind == FileKindValue.Missing) Directory.CreateDirectory(_folder);
        else if (kind != FileKindValue.Directory)
            throw new ImageException(ImageError.Unavailable,
                $"the store's {Folder} is not a directory but a {kind}: transfer tickets cannot be kept there until an operator removes it");
    }

    private string PathOf(string digest) => Path.Combine(_folder, digest);

    private static string Digest(string id) => Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(id)));

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    private sealed record TicketFile(string Image, string Scope, long ExpiresMs, string? Bitmap = null, string? Snapshot = null);
}
