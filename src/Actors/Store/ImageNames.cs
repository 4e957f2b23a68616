using System.Text.RegularExpressions;

namespace QcowActors.Actors.Store;

/// <summary>
/// Image names and their files: {name}.qcow2 in the store directory, and {name}.raw (raw images,
/// served read-only: read, and used as backing images); nothing else is an image. When both exist,
/// the name is the qcow2 image's.
/// </summary>
public static partial class ImageNames
{
    public const string Extension = ".qcow2";
    public const string RawExtension = ".raw";

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex Pattern();

    public static bool IsValid(string? name) => name is not null && Pattern().IsMatch(name);

    public static string PathFor(string directory, string name) => Path.Combine(directory, name + Extension);

    public static string RawPathFor(string directory, string name) => Path.Combine(directory, name + RawExtension);

    /// <summary>The raw file of a name that has no qcow2 image, or null.</summary>
    public static string? RawImagePath(string directory, string name)
    {
        if (File.Exists(PathFor(directory, name))) return null;
        string raw = RawPathFor(directory, name);
        return File.Exists(raw) ? raw : null;
    }

    /// <summary>The image name of a store file, or null when the file is not an image.</summary>
    public static string? FromFileName(string fileName)
    {
        if (!fileName.EndsWith(Extension, StringComparison.Ordinal)) return null;
        string name = fileName[..^Extension.Length];
        return IsValid(name) ? name : null;
    }
}
