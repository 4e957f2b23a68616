using System.Security.Cryptography;
using System.Text;

namespace QcowActors.Api.Tests.Auth;

/// <summary>Three tokens, one per scope, 40+ characters, and a 31-character one whose hash is configured (it must never work).</summary>
internal static class AuthTestTokens
{
    public const string Read = "read-token-0123456789abcdefghijklmnopqrstuv";
    public const string Write = "write-token-0123456789abcdefghijklmnopqrstu";
    public const string Admin = "admin-token-0123456789abcdefghijklmnopqrstu";
    public const string Short = "short-token-0123456789abcdefghi";

    public static string Sha256(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>Configuration settings (key=value) for the four tokens.</summary>
    public static readonly string[] Settings =
    [
        "Auth:Tokens:0:Name=reader", "Auth:Tokens:0:Scope=read", $"Auth:Tokens:0:Sha256={Sha256(Read)}",
        "Auth:Tokens:1:Name=writer", "Auth:Tokens:1:Scope=write", $"Auth:Tokens:1:Sha256={Sha256(Write)}",
        "Auth:Tokens:2:Name=admin", "Auth:Tokens:2:Scope=admin", $"Auth:Tokens:2:Sha256={Sha256(Admin).ToUpperInvariant()}",
        "Auth:Tokens:3:Name=short", "Auth:Tokens:3:Scope=admin", $"Auth:Tokens:3:Sha256={Sha256(Short)}",
    ];
}
