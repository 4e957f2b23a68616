using System.Text;

namespace QcowActors.Api.Auth;

/// <summary>
/// Reads the token out of "Authorization: Bearer TOKEN" or "Authorization: Basic base64(USER:TOKEN)"
/// (QEMU's curl driver and browsers can only send Basic; the user name is ignored) into a buffer
/// the caller owns, so a request allocates nothing for it. Scheme names are case-insensitive (RFC 9110 §11.1).
/// </summary>
internal static class AuthorizationHeader
{
    /// <summary>Bytes the caller's buffer must have: the largest token in UTF-8, and the largest Basic credentials.</summary>
    public const int BufferBytes = TokenRules.MaxChars * 3 > TokenRules.MaxBasicBytes ? TokenRules.MaxChars * 3 : TokenRules.MaxBasicBytes;

    /// <summary>
    /// Finds the token: its UTF-8 bytes are <paramref name="buffer"/>[<paramref name="token"/>] and it
    /// has <paramref name="chars"/> characters. Anything else is named by the result.
    /// </summary>
    public static PresentedCredentials Read(ReadOnlySpan<char> value, Span<byte> buffer, out Range token, out int chars)
    {
        token = default;
        chars = 0;
        value = value.Trim();
        int space = value.IndexOf(' ');
        if (space <= 0)
            return PresentedCredentials.UnsupportedScheme;
        ReadOnlySpan<char> scheme = value[..space];
        ReadOnlySpan<char> credentials = value[(space + 1)..].Trim();
        if (scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
        {
            if (credentials.IsEmpty)
                return PresentedCredentials.Empty;
            if (credentials.Length > TokenRules.MaxChars)
                return PresentedCredentials.TooLong;
            chars = credentials.Length;
            token = 0..Encoding.UTF8.GetBytes(credentials, buffer);
            return PresentedCredentials.Token;
        }
        if (scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
            return ReadBasic(credentials, buffer, out token, out chars);
        return PresentedCredentials.UnsupportedScheme;
    }

    private static PresentedCredentials ReadBasic(ReadOnlySpan<char> base64, Span<byte> buffer, out Range token, out int chars)
    {
        token = default;
        chars = 0;
        if (base64.Length > (TokenRules.MaxBasicBytes + 2) / 3 * 4)
            return PresentedCredentials.TooLong;
        if (!Convert.TryFromBase64Chars(base64, buffer, out int length))
            return PresentedCredentials.MalformedBasic;
        int colon = buffer[..length].IndexOf((byte)':');
        if (colon < 0)
            return PresentedCredentials.MalformedBasic;
        ReadOnlySpan<byte> password = buffer[(colon + 1)..length];
        if (password.IsEmpty)
            return PresentedCredentials.Empty;
        if (!System.Text.Unicode.Utf8.IsValid(password))
            return PresentedCredentials.MalformedBasic;
        chars = Encoding.UTF8.GetCharCount(password);
        if (chars > TokenRules.MaxChars)
            return PresentedCredentials.TooLong;
        token = (colon + 1)..length;
        return PresentedCredentials.Token;
    }
}
