using Microsoft.AspNetCore.Http.Metadata;

namespace QcowActors.Api.Http;

/// <summary>
/// Endpoint metadata read by the routing middleware to set the request body limit per endpoint:
/// unlimited for disk uploads (bodies are gigabytes), small for JSON commands.
/// </summary>
internal sealed class RequestBodyLimit(long? maxBytes) : IRequestSizeLimitMetadata
{
    public static readonly RequestBodyLimit Unlimited = new(null);
    public static readonly RequestBodyLimit Json = new(64 * 1024);

    public long? MaxRequestBodySize { get; } = maxBytes;
}
