namespace QcowActors.Api.Http;

/// <summary>
/// The imageio "flush" query parameter: y (the default) makes the request durable before it is
/// answered; n leaves that to a later PATCH {"op":"flush"}.
/// </summary>
internal static class FlushParameter
{
    public static bool TryParse(string? value, out bool flush, out string error)
    {
        error = "";
        switch (value?.Trim().ToLowerInvariant())
        {
            case null or "" or "y" or "yes" or "true" or "1":
                flush = true;
                return true;
            case "n" or "no" or "false" or "0":
                flush = false;
                return true;
            default:
                flush = true;
                error = $"flush='{value}' is not one of y, n, true, false, 1, 0";
                return false;
        }
    }
}
