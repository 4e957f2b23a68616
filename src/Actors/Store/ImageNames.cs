using System.Text.RegularExpressions;

namespace QcowActors.Actors.Store;

/// <summary>Image names and their files: {name}.qcow2 in the store directory; nothing else is an image.</summary>
public static partial class ImageNames
{
    public const string Extension = ".qcow2";

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex Pattern();

    public static bool IsValid(string? name) => name is not null && Pattern().IsMatch(name);

    public static string PathFor(string directory, string name) => Path.Combine(directory, name + Extension);

    /// <summary>The image name of a store file, or null when the file is not an image.</summary>
    public static string? FromFileName(string fileName)
    {
        if (!fileName.EndsWith(Extension, StringComparison.Ordinal)) return null;
        string name = fileName[..^Extension.Length];
        return IsValid(name) ? name : null;
    }
}
