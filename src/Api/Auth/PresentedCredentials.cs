namespace QcowActors.Api.Auth;

/// <summary>What an Authorization header holds, as <see cref="AuthorizationHeader.Read"/> finds it.</summary>
internal enum PresentedCredentials
{
    /// <summary>A token, in the caller's buffer.</summary>
    Token,
    UnsupportedScheme,
    MalformedBasic,
    Empty,
    TooLong,
}
