namespace QcowActors.Api.Auth;

/// <summary>What a token must look like; shared by the server and `hash-token`.</summary>
internal static class TokenRules
{
    /// <summary>Shorter tokens are refused everywhere: guessable ones never work, whatever is configured.</summary>
    public const int MinChars = 32;

    /// <summary>Bounds the hashing per request and the stack buffers holding a presented token.</summary>
    public const int MaxChars = 512;

    /// <summary>Basic credentials (user:token) decoded: at most this many bytes.</summary>
    public const int MaxBasicBytes = 1024;

    /// <summary>A printable ASCII character other than space: what hash-token accepts in a token.</summary>
    public static bool IsTokenChar(char c) => c is > ' ' and < '\x7f';
}
