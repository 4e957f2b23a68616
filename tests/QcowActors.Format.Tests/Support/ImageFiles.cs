namespace QcowActors.Format.Tests.Support;

/// <summary>Reading headers from image files and materialising plans into files or byte arrays.</summary>
internal static class ImageFiles
{
    /// <summary>Enough bytes for the first cluster of any cluster size QEMU allows.</summary>
    private const int MaxClusterBytes = 1 << QcowLimits.MaxClusterBits;

    public static QcowHeader ParseHeader(string path)
    {
        byte[] start = ReadAt(path, 0, MaxClusterBytes);
        return QcowHeader.Parse(start, new FileInfo(path).Length);
    }

    /// <summary>Up to <paramref name="count"/> bytes from <paramref name="offset"/> (fewer at the end of the file).</summary>
    public static byte[] ReadAt(string path, long offset, int count)
    {
        using var handle = File.OpenHandle(path);
        long available = Math.Max(0, RandomAccess.GetLength(handle) - offset);
        var buffer = new byte[Math.Min(count, available)];
        int done = 0;
        while (done < buffer.Length)
        {
            int read = RandomAccess.Read(handle, buffer.AsSpan(done), offset + done);
            if (read == 0)
                break;
            done += read;
        }
        return buffer;
    }

    public static void WritePlan(ImagePlan plan, string path)
    {
        using var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite);
        foreach (var (offset, bytes) in plan.Writes)
            RandomAccess.Write(handle, bytes.Span, offset);
        RandomAccess.SetLength(handle, plan.FileLength);
    }

    /// <summary>The whole image in memory (only for small plans).</summary>
    public static byte[] ToBytes(ImagePlan plan)
    {
        var image = new byte[plan.FileLength];
        foreach (var (offset, bytes) in plan.Writes)
            bytes.Span.CopyTo(image.AsSpan((int)offset));
        return image;
    }
}
