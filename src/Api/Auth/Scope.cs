namespace QcowActors.Api.Auth;

/// <summary>
/// What an endpoint needs (README "Authentication"). Token scopes nest: <see cref="Admin"/> grants
/// everything <see cref="Write"/> does, which grants everything <see cref="Read"/> does. A token has
/// one of those three; <see cref="None"/> and <see cref="Ticket"/> are only ever needed, never granted.
/// </summary>
internal enum Scope
{
    /// <summary>No token, ever: health probes and the cluster bootstrap route.</summary>
    None,

    /// <summary>No token: the ticket id in the URL is the authorisation (imageio transfer URLs).</summary>
    Ticket,

    Read,
    Write,
    Admin,
}
