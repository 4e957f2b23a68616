using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;

namespace QcowActors.EndToEnd.Tests;

/// <summary>The tokens of the auth tests: one per scope (40+ characters), and a 31-character one whose hash is configured too.</summary>
internal static class AuthTokens
{
    public const string Read = "e2e-read-token-0123456789abcdefghijklmnopqr";
    public const string Write = "e2e-write-token-0123456789abcdefghijklmnopq";
    public const string Admin = "e2e-admin-token-0123456789abcdefghijklmnopq";
    public const string Short = "e2e-short-token-0123456789abcde";
    public const string Unknown = "e2e-unknown-token-0123456789abcdefghijklmno";

    /// <summary>Token of each scope, narrowest first.</summary>
    public static readonly (string Scope, string Token)[] ByScope = [("read", Read), ("write", Write), ("admin", Admin)];

    public static string Sha256(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>Auth__Tokens__N__* as the server reads them from its environment (the admin hash in upper case).</summary>
    public static Dictionary<string, string> Environment() => new()
    {
        ["Auth__Tokens__0__Name"] = "reader", ["Auth__Tokens__0__Scope"] = "read", ["Auth__Tokens__0__Sha256"] = Sha256(Read),
        ["Auth__Tokens__1__Name"] = "writer", ["Auth__Tokens__1__Scope"] = "write", ["Auth__Tokens__1__Sha256"] = Sha256(Write),
        ["Auth__Tokens__2__Name"] = "admin", ["Auth__Tokens__2__Scope"] = "admin", ["Auth__Tokens__2__Sha256"] = Sha256(Admin).ToUpperInvariant(),
        ["Auth__Tokens__3__Name"] = "short", ["Auth__Tokens__3__Scope"] = "admin", ["Auth__Tokens__3__Sha256"] = Sha256(Short),
    };

    /// <summary>"Bearer TOKEN", or Basic with a user name and the token as the password.</summary>
    public static AuthenticationHeaderValue Header(string token, string form) => form == "Basic"
        ? new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("e2e-user:" + token)))
        : new AuthenticationHeaderValue("Bearer", token);
}
