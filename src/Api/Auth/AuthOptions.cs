namespace QcowActors.Api.Auth;

/// <summary>
/// Configuration section "Auth" (README "Authentication"). No token configured: the API is open,
/// as before, and may only listen on loopback unless <see cref="AllowAnonymous"/>. Any token
/// configured: every endpoint but the health probes, the cluster bootstrap route and ticket URLs
/// needs one. Read and checked once at start by <see cref="AuthConfiguration"/>.
/// </summary>
internal sealed class AuthOptions
{
    public const string Section = "Auth";

    /// <summary>Auth:Tokens:N — the tokens, each by its SHA-256 only.</summary>
    public List<TokenOptions> Tokens { get; set; } = [];

    /// <summary>Auth:AllowPlainHttp — tokens may reach a non-loopback http:// listener (TLS ends at an ingress in front).</summary>
    public bool AllowPlainHttp { get; set; }

    /// <summary>Auth:AllowAnonymous — with no token configured, the API may still listen beyond loopback (open to anyone reaching it).</summary>
    public bool AllowAnonymous { get; set; }

    public bool HasTokens => Tokens.Count > 0;
}
