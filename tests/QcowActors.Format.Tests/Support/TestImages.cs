using System.Buffers.Binary;

namespace QcowActors.Format.Tests.Support;

/// <summary>Small valid images in memory, for tests that corrupt one field at a time.</summary>
internal static class TestImages
{
    public const long OneGiB = 1L << 30;
    public const int ClusterSize = 65536;

    /// <summary>A 1 GiB v3 image as <see cref="ImageCreator"/> lays it out (checked against qemu-img elsewhere).</summary>
    public static byte[] V3() => ImageFiles.ToBytes(ImageCreator.Plan(new CreateOptions(OneGiB)));

    /// <summary>The same image with a 72-byte v2 header and no extensions.</summary>
    public static byte[] V2()
    {
        byte[] image = V3();
        var header = QcowHeader.Parse(image, image.Length);
        header.Version = 2;
        header.HeaderLength = 0;
        header.AdditionalFields = [];
        header.Extensions.Clear();
        header.WriteTo(image.AsSpan(0, ClusterSize));
        return image;
    }

    public static void SetU32(byte[] image, int offset, uint value) => BinaryPrimitives.WriteUInt32BigEndian(image.AsSpan(offset), value);

    public static void SetU64(byte[] image, int offset, ulong value) => BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(offset), value);

    public static uint GetU32(byte[] image, int offset) => BinaryPrimitives.ReadUInt32BigEndian(image.AsSpan(offset));

    public static ulong GetU64(byte[] image, int offset) => BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan(offset));
}
