using System.Text;
using QcowActors.Actors.Service;
using QcowActors.Actors.Store;
using QcowActors.Format;

namespace QcowActors.Actors.Backing;

/// <summary>A backing file resolved to a file of the store.</summary>
/// <param name="FileName">Its name in the store directory (base.qcow2, base.raw).</param>
/// <param name="Format">"qcow2" or "raw".</param>
public sealed record BackingTarget(string FileName, string Format, string Path)
{
    /// <summary>The image name (the file name without its extension).</summary>
    public string Name => System.IO.Path.GetFileNameWithoutExtension(FileName);
}

/// <summary>
/// Where a backing file name may lead. QEMU resolves a relative name against the overlay's
/// directory and follows any absolute path or protocol; the server serves the store and nothing
/// else, so the name must resolve to a regular file directly in the store directory whose
/// extension says its format, and the header must name that format (the backing-format
/// extension): a format is never probed, as a probed raw file could pose as a qcow2 header.
/// </summary>
public static class BackingReference
{
    public const string Feature = "backing file";

    /// <summary>The backing format the header records (its backing-format extension), or null.</summary>
    public static string? FormatOf(QcowHeader header)
        => header.FindExtension(HeaderExtensionType.BackingFormat) is { } e ? Encoding.UTF8.GetString(e.Data).TrimEnd('\0') : null;

    /// <summary>Resolves <paramref name="name"/> (from image <paramref name="image"/>'s header) or throws a 422 saying why not. Nothing is opened.</summary>
    public static BackingTarget Resolve(string storeDirectory, string image, string name, string? format)
    {
        var target = TryResolvePath(storeDirectory, name, out string? problem) ?? throw Refused(image, name, problem!);
        if (format is null)
            throw Refused(image, name, "has no backing format recorded (the header lacks the backing-format extension); the server does not "
                + $"probe formats: record it with qemu-img rebase -u -b {target.FileName} -F {target.Format}");
        if (format != target.Format)
            throw Refused(image, name, $"is recorded as {format}, but the store holds {target.Format} images under the name {target.FileName}");
        var kind = Io.FileKind.Of(target.Path);
        if (kind == Io.FileKindValue.SymbolicLink)
            throw Refused(image, name, "is a symbolic link; a backing image must be a regular file of the store");
        if (kind == Io.FileKindValue.Missing)
            throw Refused(image, name, $"does not exist in the store (no file {target.FileName})");
        if (Io.FileKind.NotAnImage(kind) is { } notAnImage)
            throw Refused(image, name, $"names {target.FileName}, which {notAnImage}");
        if (new FileInfo(target.Path).Length == 0)
            throw Refused(image, name, $"names an empty file ({target.FileName})");
        return target;
    }

    /// <summary>The store file a name resolves to, or null (with the reason) when it leads outside the store or to no image file.</summary>
    public static BackingTarget? TryResolvePath(string storeDirectory, string name, out string? problem)
    {
        problem = null;
        if (name.Length == 0 || name.Contains('\0'))
        {
            problem = "is empty or not a file name";
            return null;
        }
        string store = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(storeDirectory));
        string full;
        try
        {
            full = System.IO.Path.GetFullPath(System.IO.Path.IsPathRooted(name) ? name : System.IO.Path.Combine(store, name));
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            problem = "is not a valid path";
            return null;
        }
        if (!string.Equals(System.IO.Path.GetDirectoryName(full), store, StringComparison.Ordinal))
        {
            problem = "resolves outside the store directory; a backing image must be a file of the store (a relative name such as base.qcow2)";
            return null;
        }
        string file = System.IO.Path.GetFileName(full);
        string? format = file.EndsWith(ImageNames.Extension, StringComparison.Ordinal) ? "qcow2"
            : file.EndsWith(ImageNames.RawExtension, StringComparison.Ordinal) ? "raw" : null;
        if (format is null || !ImageNames.IsValid(System.IO.Path.GetFileNameWithoutExtension(file)))
        {
            problem = $"is not an image file of the store (the store holds NAME{ImageNames.Extension} and NAME{ImageNames.RawExtension} files)";
            return null;
        }
        return new BackingTarget(file, format, full);
    }

    internal static ImageException Refused(string image, string name, string why)
        => new(ImageError.Unsupported, $"image '{image}': its backing file '{name}' {why}", Feature);
}
