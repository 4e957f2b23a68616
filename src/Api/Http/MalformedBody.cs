namespace QcowActors.Api.Http;

/// <summary>
/// Kestrel reports most malformed request bodies as BadHttpRequestException, but a chunk size that
/// overflows as a plain IOException ("Bad chunk size data.", its parser's OverflowException inside).
/// Thrown while reading the request body of a live request, that is the client's fault: a 400, not a
/// 500. (BadHttpRequestException is an IOException too: callers let it through with its own status, e.g. 413.)
/// </summary>
internal static class MalformedBody
{
    public static string Detail(IOException e) => $"the request body is malformed: {e.Message}";

    public static BadHttpRequestException From(IOException e) => new(Detail(e), StatusCodes.Status400BadRequest, e);
}
