using System.Text.RegularExpressions;

namespace QcowActors.Api.Http;

/// <summary>
/// Image names as they appear in URLs. The name becomes a file name in the store directory, so the
/// pattern admits no separators and no leading dot: "../x", ".hidden" and "a/b" can never reach the
/// file system.
/// </summary>
internal static partial class ImageName
{
    public const string Pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";

    // \z, not $: in .NET "$" also matches before a final newline ("vm1\n").
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\\z", RegexOptions.CultureInvariant)]
    private static partial Regex Regex();

    /// <summary>Null when valid, otherwise a detail for a 400 problem.</summary>
    public static string? Validate(string? name)
    {
        if (string.IsNullOrEmpty(name))
            return "image name is empty";
        if (Regex().IsMatch(name))
            return null;
        string shown = name.Length > 140 ? name[..140] + "…" : name;
        return $"image name '{shown}' is invalid: use 1 to 128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit";
    }
}
