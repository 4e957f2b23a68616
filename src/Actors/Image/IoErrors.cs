using QcowActors.Actors.Service;

namespace QcowActors.Actors.Image;

/// <summary>Maps I/O failures to what a client can act on: ENOSPC/EDQUOT → 507, anything else → 503.</summary>
internal static class IoErrors
{
    private const int ENOSPC = 28;
    private const int EDQUOT = 122;

    public static bool IsDiskFull(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is IOException io && ((io.HResult & 0xFFFF) is ENOSPC or EDQUOT || io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase)))
                return true;
        }
        return false;
    }

    public static ImageException Map(Exception e, string image) => e switch
    {
        ImageException i => i,
        _ when IsDiskFull(e) => new ImageException(ImageError.DiskFull, $"no space left on the store's disk while writing image '{image}'; the image stays consistent", null, e),
        _ => new ImageException(ImageError.Unavailable, $"I/O error on image '{image}'; the image stays consistent, try again", null, e),
    };
}
