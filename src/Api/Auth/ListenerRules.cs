using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Options;

namespace QcowActors.Api.Auth;

/// <summary>
/// Which addresses the server may listen on, checked from configuration before Kestrel binds
/// anything (so a refused address is never open, not even for a moment). Loopback is always fine.
/// Beyond it: with tokens, only HTTPS, unless Auth:AllowPlainHttp says TLS ends in front (tokens
/// would otherwise cross the network in clear); without tokens, only with Auth:AllowAnonymous
/// (anyone reaching the port could read, write and delete every image), and then with a warning.
/// </summary>
internal static class ListenerRules
{
    /// <summary>What Kestrel will listen on: urls (or http_ports/https_ports without them), and Kestrel:Endpoints.</summary>
    public static IReadOnlyList<string> Listeners(IConfiguration configuration)
    {
        var listeners = new List<string>();
        string? urls = configuration[WebHostDefaults.ServerUrlsKey];
        if (!string.IsNullOrWhiteSpace(urls))
            listeners.AddRange(urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        else
        {
            // ASPNETCORE_HTTP_PORTS / HTTPS_PORTS (set in Microsoft's container images) apply only without urls; they bind every interface.
            foreach (var (key, scheme) in new[] { ("http_ports", "http"), ("https_ports", "https") })
                foreach (string port in (configuration[key] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    listeners.Add($"{scheme}://*:{port}");
        }
        foreach (IConfigurationSection endpoint in configuration.GetSection("Kestrel:Endpoints").GetChildren())
        {
            if (endpoint["Url"] is { Length: > 0 } url)
                listeners.Add(url);
        }
        return listeners;
    }

    /// <summary>Throws <see cref="OptionsValidationException"/> for listeners the rules refuse; returns the warnings to log.</summary>
    public static IReadOnlyList<string> Check(IReadOnlyList<string> listeners, AuthOptions auth)
    {
        var failures = new List<string>();
        var warnings = new List<string>();
        foreach (string listener in listeners)
        {
            if (IsLoopback(listener))
                continue;
            bool https = listener.StartsWith("https:", StringComparison.OrdinalIgnoreCase);
            if (auth.HasTokens)
            {
                if (https)
                    continue;
                if (auth.AllowPlainHttp)
                    warnings.Add($"listening on {listener} over plain HTTP with tokens (Auth:AllowPlainHttp=true): TLS must end in front of it, at an ingress or proxy");
                else
                    failures.Add($"{listener} is beyond loopback and not HTTPS, so tokens would cross the network in clear. Listen on https:// "
                        + "with a certificate (Kestrel:Certificates:Default:Path and KeyPath), or set Auth:AllowPlainHttp=true when TLS ends at an ingress or proxy in front");
            }
            else if (auth.AllowAnonymous)
            {
                warnings.Add($"listening on {listener} beyond loopback WITHOUT authentication (Auth:AllowAnonymous=true): anyone who reaches it can read, write and delete every image");
            }
            else
            {
                failures.Add($"{listener} is beyond loopback and no token is configured: anyone reaching it could read, write and delete every image. "
                    + "Configure Auth:Tokens (README \"Authentication\"), or set Auth:AllowAnonymous=true to serve it without authentication");
            }
        }
        if (failures.Count > 0)
            throw new OptionsValidationException(AuthOptions.Section, typeof(AuthOptions), failures);
        return warnings;
    }

    /// <summary>
    /// 127.0.0.0/8, ::1, localhost and Unix sockets. A wildcard (*, +, 0.0.0.0, [::]) or any other
    /// host name is every interface to Kestrel. Unparsable addresses count as beyond loopback
    /// (Kestrel then refuses them itself).
    /// </summary>
    internal static bool IsLoopback(string listener)
    {
        int scheme = listener.IndexOf("://", StringComparison.Ordinal);
        string rest = scheme < 0 ? listener : listener[(scheme + 3)..];
        if (rest.StartsWith("unix:", StringComparison.OrdinalIgnoreCase))
            return true;
        string host;
        if (rest.StartsWith('['))
        {
            int close = rest.IndexOf(']');
            if (close < 0)
                return false;
            host = rest[1..close];
        }
        else
        {
            int end = rest.IndexOfAny([':', '/']);
            host = end < 0 ? rest : rest[..end];
        }
        return QcowActors.Actors.Cluster.ClusterSettings.IsLoopbackHost(host);
    }
}
