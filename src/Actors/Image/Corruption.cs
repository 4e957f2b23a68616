using QcowActors.Actors.Service;

namespace QcowActors.Actors.Image;

/// <summary>How an image that turned out corrupt answers writes (422, feature "corrupt"), in one place.</summary>
internal static class Corruption
{
    public const string Feature = "corrupt";

    public static ImageRefusal Refusal(string detail)
        => new(Feature, $"the image is corrupt ({detail}); it is marked corrupt and served read-only: repair it with qemu-img check -r all");

    public static ImageException WriteRefused(string image, string detail)
        => new(ImageError.Unsupported, $"image '{image}': {Refusal(detail).Detail}", Feature);
}
