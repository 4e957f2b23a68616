namespace QcowActors.Format;

/// <summary>Known header extension types (qcow2.txt "Header extensions").</summary>
public static class HeaderExtensionType
{
    public const uint End = 0;
    public const uint BackingFormat = 0xE2792ACA;
    public const uint FeatureNameTable = 0x6803F857;
    public const uint Bitmaps = 0x23852875;
    public const uint FullDiskEncryption = 0x0537BE77;
    public const uint ExternalDataFile = 0x44415441;
}

/// <summary>One header extension as stored: type, and its data (unpadded). Unknown ones are kept byte for byte.</summary>
public sealed record HeaderExtension(uint Type, byte[] Data);
