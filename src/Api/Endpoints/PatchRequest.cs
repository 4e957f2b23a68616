using System.Text.Json;
using QcowActors.Api.Http;

namespace QcowActors.Api.Endpoints;

internal enum PatchOperation { Zero, Flush }

/// <summary>
/// imageio's PATCH body: {"op":"zero","offset","size","flush"} or {"op":"flush"}. Unknown members
/// are ignored, as imageio's own server does, so newer clients keep working.
/// </summary>
internal sealed record PatchRequest(PatchOperation Op, long Offset, long Size, bool Flush)
{
    public static bool TryParse(JsonElement body, out PatchRequest? request, out string error)
    {
        request = null;
        if (!JsonBody.TryGet(body, "op", out JsonElement opValue) || opValue.ValueKind != JsonValueKind.String)
        {
            error = "op is required: \"zero\" or \"flush\"";
            return false;
        }
        switch (opValue.GetString())
        {
            case "flush":
                request = new PatchRequest(PatchOperation.Flush, 0, 0, true);
                error = "";
                return true;
            case "zero":
                break;
            default:
                error = $"op \"{opValue.GetString()}\" is not supported: use \"zero\" or \"flush\"";
                return false;
        }

        if (!TryGetNumber(body, "offset", out long offset, out error) || !TryGetNumber(body, "size", out long size, out error))
            return false;
        bool flush = false;
        if (JsonBody.TryGet(body, "flush", out JsonElement flushValue))
        {
            if (flushValue.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                error = $"flush must be true or false, not {JsonBody.Describe(flushValue)}";
                return false;
            }
            flush = flushValue.GetBoolean();
        }
        request = new PatchRequest(PatchOperation.Zero, offset, size, flush);
        error = "";
        return true;
    }

    private static bool TryGetNumber(JsonElement body, string member, out long value, out string error)
    {
        value = 0;
        error = "";
        if (!JsonBody.TryGet(body, member, out JsonElement element))
        {
            error = $"{member} is required for op \"zero\"";
            return false;
        }
        if (JsonBody.TryGetWholeNumber(element, out value))
            return true;
        error = $"{member} must be a non-negative whole number, not {JsonBody.Describe(element)}";
        return false;
    }
}
