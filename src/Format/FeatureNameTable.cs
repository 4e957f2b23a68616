using System.Numerics;
using System.Text;

namespace QcowActors.Format;

/// <summary>Which feature bitmap a feature name table entry refers to (qcow2.txt "Feature name table").</summary>
internal enum FeatureKind : byte
{
    Incompatible = 0,
    Compatible = 1,
    Autoclear = 2,
}

/// <summary>
/// The feature name table extension: 48-byte entries of u8 kind, u8 bit, 46-byte zero-padded name.
/// It lets tools that do not know a feature still name it in an error message.
/// </summary>
internal static class FeatureNameTable
{
    public const int EntryBytes = 48;
    private const int KindOffset = 0;
    private const int BitOffset = 1;
    private const int NameOffset = 2;
    private const int NameBytes = EntryBytes - NameOffset;

    /// <summary>The features qemu-img 7.2 names in every image it creates, in its order.</summary>
    public static IReadOnlyList<(FeatureKind Kind, ulong Mask, string Name)> Known { get; } =
    [
        (FeatureKind.Incompatible, FeatureBits.IncompatibleDirty, "dirty bit"),
        (FeatureKind.Incompatible, FeatureBits.IncompatibleCorrupt, "corrupt bit"),
        (FeatureKind.Incompatible, FeatureBits.IncompatibleExternalData, "external data file"),
        (FeatureKind.Incompatible, FeatureBits.IncompatibleCompressionType, "compression type"),
        (FeatureKind.Incompatible, FeatureBits.IncompatibleExtendedL2, "extended L2 entries"),
        (FeatureKind.Compatible, FeatureBits.CompatibleLazyRefcounts, "lazy refcounts"),
        (FeatureKind.Autoclear, FeatureBits.AutoclearBitmaps, "bitmaps"),
        (FeatureKind.Autoclear, FeatureBits.AutoclearRawExternal, "raw external data"),
    ];

    /// <summary>The extension holding <see cref="Known"/>.</summary>
    public static HeaderExtension Build()
    {
        var data = new byte[Known.Count * EntryBytes];
        for (int i = 0; i < Known.Count; i++)
        {
            var (kind, mask, name) = Known[i];
            var entry = data.AsSpan(i * EntryBytes, EntryBytes);
            entry[KindOffset] = (byte)kind;
            entry[BitOffset] = (byte)BitOperations.Log2(mask);
            Encoding.ASCII.GetBytes(name, entry.Slice(NameOffset, NameBytes));
        }
        return new HeaderExtension(HeaderExtensionType.FeatureNameTable, data);
    }
}
