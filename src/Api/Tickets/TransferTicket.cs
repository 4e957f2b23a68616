namespace QcowActors.Api.Tickets;

/// <summary>What a ticket lets its holder do: read the disk, or also write it.</summary>
public enum TicketScope { Read, Write }

/// <summary>
/// A transfer ticket, as ovirt-imageio hands them out: whoever knows its id may use the data
/// endpoints of one image (read, or read and write) until it expires or is deleted, with no
/// other credential, so imageio clients and QEMU's http driver work unchanged.
/// </summary>
public sealed record TransferTicket(string Image, TicketScope Scope, DateTimeOffset Expires)
{
    public bool IsExpired(DateTimeOffset now) => now >= Expires;
}

/// <summary>Set on a request that came in through /tickets/{id}/data: its ticket, and the path the client used (forwarded as is, so the owner checks the ticket again).</summary>
public sealed record TicketAccess(string Id, TransferTicket Ticket, PathString OriginalPath);
