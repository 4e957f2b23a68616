namespace QcowActors.Api.Tickets;

/// <summary>What a ticket lets its holder do: read the disk, or also write it.</summary>
public enum TicketScope { Read, Write }

/// <summary>
/// A transfer ticket, as ovirt-imageio hands them out: whoever knows its id may use the data
/// endpoints of one image (read, or read and write) until it expires or is deleted, with no
/// other credential, so imageio clients and QEMU's http driver work unchanged.
/// </summary>
/// <remarks>
/// With <see cref="Bitmap"/> (read tickets only) the URL serves /images/{image}/bitmaps/{bitmap}/data —
/// with <see cref="Snapshot"/>, the checkpoint's disk — so an imageio backup client gets that
/// bitmap's dirty extents without knowing about bitmaps.
/// </remarks>
public sealed record TransferTicket(string Image, TicketScope Scope, DateTimeOffset Expires, string? Bitmap = null, string? Snapshot = null)
{
    public bool IsExpired(DateTimeOffset now) => now >= Expires;
}

/// <summary>Set on a request that came in through /tickets/{id}/data: its ticket, and the path the client used (forwarded as is, so the owner checks the ticket again).</summary>
public sealed record TicketAccess(string Id, TransferTicket Ticket, PathString OriginalPath);
