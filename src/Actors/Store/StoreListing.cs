using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Store;

/// <summary>Lists the store from file headers alone: no image is opened (no actor, no repair); raw images (NAME.raw without a NAME.qcow2) by their length.</summary>
internal static class StoreListing
{
    private const int ProbeBytes = 4096;

    public static async Task<IReadOnlyList<ImageInfo>> ListAsync(string directory)
    {
        var result = new List<ImageInfo>();
        if (!Directory.Exists(directory))
            throw new ImageException(ImageError.Unavailable, "the store directory is missing; the server cannot list images until it is back");
        foreach (string path in Directory.EnumerateFiles(directory, "*" + ImageNames.Extension).Order(StringComparer.Ordinal))
        {
            string? name = ImageNames.FromFileName(Path.GetFileName(path));
            // Regular files only: FIFOs, sockets, devices and symbolic links are not images of the store.
            if (name is null || Io.FileKind.Of(path) != Io.FileKindValue.Regular) continue;
            var info = await TryReadAsync(path, name).ConfigureAwait(false);
            if (info is not null) result.Add(info);
        }
        var qcow2 = result.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var file in new DirectoryInfo(directory).EnumerateFiles("*" + ImageNames.RawExtension))
        {
            string name = Path.GetFileNameWithoutExtension(file.Name);
            if (!ImageNames.IsValid(name) || qcow2.Contains(name) || Io.FileKind.Of(file.FullName) != Io.FileKindValue.Regular || file.Length == 0) continue;
            result.Add(ImageInfo.Raw(name, file.Length));
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return result;
    }

    public static async Task<ImageInfo?> TryReadAsync(string path, string name)
    {
        try
        {
            using var handle = Io.UnlockedRead.Open(path);
            long length = RandomAccess.GetLength(handle);
            var probe = new byte[(int)Math.Min(length, ProbeBytes)];
            await RandomAccess.ReadAsync(handle, probe, 0).ConfigureAwait(false);
            if (probe.Length >= 24)
            {
                int clusterBits = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(probe.AsSpan(20));
                if (clusterBits is >= QcowLimits.MinClusterBits and <= QcowLimits.MaxClusterBits && (1 << clusterBits) > probe.Length && length > probe.Length)
                {
                    probe = new byte[(int)Math.Min(length, 1L << clusterBits)];
                    await RandomAccess.ReadAsync(handle, probe, 0).ConfigureAwait(false);
                }
            }
            var h = QcowHeader.Parse(probe, length);
            return ImageInfo.FromHeader(name, h, length);
        }
        catch (Exception e) when (e is QcowFormatException or IOException or UnauthorizedAccessException)
        {
            return null; // not a readable qcow2 image: GET /images/{name} explains why
        }
    }
}
