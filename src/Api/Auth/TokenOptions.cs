namespace QcowActors.Api.Auth;

/// <summary>
/// One entry of Auth:Tokens. The token itself is never configured: only the hex SHA-256 of its
/// UTF-8 bytes (`QcowActors.Api hash-token` prints it), so configuration, environment dumps and
/// Secrets never hold a usable credential.
/// </summary>
internal sealed class TokenOptions
{
    /// <summary>Who holds it ("backup"); named in logs and 403 details, unique.</summary>
    public string? Name { get; set; }

    /// <summary>read, write or admin.</summary>
    public string? Scope { get; set; }

    /// <summary>64 hex digits, either case.</summary>
    public string? Sha256 { get; set; }
}
