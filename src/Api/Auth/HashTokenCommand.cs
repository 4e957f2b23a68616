using System.Security.Cryptography;
using System.Text;

namespace QcowActors.Api.Auth;

/// <summary>
/// `QcowActors.Api hash-token` (`dotnet run --project src/Api -- hash-token`): reads a token from
/// standard input and prints the hex SHA-256 of its UTF-8 bytes, the value of Auth:Tokens:N:Sha256.
/// Refuses tokens the server would refuse (shorter than 32 characters) and ones a client could
/// not send intact (spaces, control or non-ASCII characters). The token is never echoed.
/// </summary>
internal static class HashTokenCommand
{
    public const string Verb = "hash-token";

    public static int Run(IReadOnlyList<string> arguments, TextReader input, TextWriter output, TextWriter error, bool interactive)
    {
        if (arguments.Count > 0)
        {
            error.WriteLine($"usage: {Verb} < token-file   (reads one token from standard input, prints its SHA-256; no arguments)");
            return 2;
        }
        if (interactive)
            error.WriteLine("Type the token and press Enter (it is not stored; only its SHA-256 is printed):");
        string text = input.ReadToEnd();
        // One line: a trailing newline (echo, a file) is not part of the token.
        if (text.EndsWith('\n'))
            text = text[..^1];
        if (text.EndsWith('\r'))
            text = text[..^1];
        if (Problem(text) is { } problem)
        {
            error.WriteLine($"{Verb}: {problem}");
            return 1;
        }
        output.WriteLine(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text))));
        return 0;
    }

    private static string? Problem(string token)
    {
        if (token.Length == 0)
            return "no token on standard input (e.g. `openssl rand -hex 32 | tee token.txt | QcowActors.Api hash-token`)";
        if (!token.All(TokenRules.IsTokenChar))
            return "a token is one line of printable ASCII without spaces (clients cannot all send other characters intact)";
        if (token.Length < TokenRules.MinChars)
            return $"the token has {token.Length} characters; tokens are at least {TokenRules.MinChars} characters "
                + "(the server refuses shorter ones): make one with `openssl rand -hex 32`";
        if (token.Length > TokenRules.MaxChars)
            return $"the token has {token.Length} characters; tokens are at most {TokenRules.MaxChars} characters";
        return null;
    }
}
