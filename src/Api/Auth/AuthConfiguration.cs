using System.Globalization;
using Microsoft.Extensions.Options;

namespace QcowActors.Api.Auth;

/// <summary>
/// Reads and checks the Auth section once, while the host is built: whether tokens exist decides
/// what is registered and which listeners may start. Read key by key rather than bound, so a
/// misspelt key or a token given in clear is refused instead of ignored. No value is ever quoted
/// back in a message: a token pasted in the wrong place must not reach the logs.
/// </summary>
internal static class AuthConfiguration
{
    private static readonly string[] SectionKeys = ["Tokens", nameof(AuthOptions.AllowPlainHttp), nameof(AuthOptions.AllowAnonymous)];
    private static readonly string[] EntryKeys = [nameof(TokenOptions.Name), nameof(TokenOptions.Scope), nameof(TokenOptions.Sha256)];
    private const int MaxNameLength = 64;

    /// <summary>The options, or <see cref="OptionsValidationException"/> listing every problem.</summary>
    public static AuthOptions Read(IConfiguration configuration)
    {
        var failures = new List<string>();
        IConfigurationSection section = configuration.GetSection(AuthOptions.Section);
        foreach (IConfigurationSection child in section.GetChildren())
        {
            if (!SectionKeys.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
                failures.Add($"{child.Path} is not a setting: the Auth section has Tokens, AllowPlainHttp and AllowAnonymous");
        }
        var options = new AuthOptions
        {
            AllowPlainHttp = ReadBool(section, nameof(AuthOptions.AllowPlainHttp), failures),
            AllowAnonymous = ReadBool(section, nameof(AuthOptions.AllowAnonymous), failures),
        };

        IConfigurationSection tokens = section.GetSection("Tokens");
        if (tokens.Value is not null)
            failures.Add("Auth:Tokens must be a list of entries with Name, Scope and Sha256 (Auth__Tokens__0__Name=..., Auth__Tokens__0__Scope=..., Auth__Tokens__0__Sha256=...), not a single value");
        var names = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var digests = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (IConfigurationSection entry in tokens.GetChildren())
        {
            if (ReadEntry(entry, failures) is not { } token)
                continue;
            if (names.TryGetValue(token.Name!, out string? other))
                failures.Add($"{entry.Path}:Name '{token.Name}' is also the name of {other}: names must be unique");
            else
                names[token.Name!] = entry.Path;
            if (digests.TryGetValue(token.Sha256!, out string? same))
                failures.Add($"{entry.Path}:Sha256 is also the Sha256 of {same}: one token, one entry");
            else
                digests[token.Sha256!] = entry.Path;
            options.Tokens.Add(token);
        }

        if (failures.Count > 0)
            throw new OptionsValidationException(AuthOptions.Section, typeof(AuthOptions), failures);
        return options;
    }

    /// <summary>One Auth:Tokens:N entry, or null after adding its problems.</summary>
    private static TokenOptions? ReadEntry(IConfigurationSection entry, List<string> failures)
    {
        int before = failures.Count;
        if (entry.Value is not null)
        {
            failures.Add($"{entry.Path} must have Name, Scope and Sha256 (e.g. {entry.Path}:Sha256), not a single value");
            return null;
        }
        foreach (IConfigurationSection key in entry.GetChildren())
        {
            if (string.Equals(key.Key, "Token", StringComparison.OrdinalIgnoreCase))
                failures.Add($"{key.Path} holds a token in clear: tokens are never configured, only their hashes. Remove it and set "
                    + $"{entry.Path}:Sha256 to the SHA-256 that `QcowActors.Api hash-token` prints for the token (README \"Authentication\")");
            else if (!EntryKeys.Contains(key.Key, StringComparer.OrdinalIgnoreCase))
                failures.Add($"{key.Path} is not a token setting: an entry has Name, Scope and Sha256");
        }

        string? name = entry[nameof(TokenOptions.Name)];
        if (string.IsNullOrWhiteSpace(name))
            failures.Add($"{entry.Path}:Name is missing: every token has a unique name (it appears in logs and 403 details)");
        else if (name.Length > MaxNameLength || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            failures.Add($"{entry.Path}:Name must be 1 to {MaxNameLength} letters, digits, '-', '_' or '.'");

        string? scopeText = entry[nameof(TokenOptions.Scope)];
        if (string.IsNullOrWhiteSpace(scopeText))
            failures.Add($"{entry.Path}:Scope is missing: read, write or admin");
        else if (!Scopes.TryParse(scopeText.Trim(), out Scope scope) || !scope.NeedsToken())
            failures.Add($"{entry.Path}:Scope must be read, write or admin (it has {scopeText.Length} characters and is none of them)");

        string? sha256 = entry[nameof(TokenOptions.Sha256)]?.Trim();
        if (string.IsNullOrEmpty(sha256))
            failures.Add($"{entry.Path}:Sha256 is missing: the hex SHA-256 of the token, as `QcowActors.Api hash-token` prints it");
        else if (sha256.Length != 64 || !sha256.All(char.IsAsciiHexDigit))
            failures.Add($"{entry.Path}:Sha256 must be 64 hex digits, the SHA-256 of the token as `QcowActors.Api hash-token` prints it; "
                + $"it has {sha256.Length.ToString(CultureInfo.InvariantCulture)} characters{(sha256.All(char.IsAsciiHexDigit) ? "" : ", not all hex digits (a token itself goes nowhere in configuration)")}");

        if (failures.Count > before)
            return null;
        return new TokenOptions { Name = name, Scope = scopeText!.Trim().ToLowerInvariant(), Sha256 = sha256!.ToLowerInvariant() };
    }

    private static bool ReadBool(IConfigurationSection section, string key, List<string> failures)
    {
        string? text = section[key];
        if (text is null)
            return false;
        if (bool.TryParse(text.Trim(), out bool value))
            return value;
        failures.Add($"Auth:{key} must be true or false");
        return false;
    }
}
