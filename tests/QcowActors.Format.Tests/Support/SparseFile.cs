using System.Runtime.InteropServices;

namespace QcowActors.Format.Tests.Support;

/// <summary>Where a file holds data and where holes (lseek SEEK_DATA / SEEK_HOLE; Linux).</summary>
internal static class SparseFile
{
    private const int SeekData = 3;
    private const int SeekHole = 4;

    public static List<(long Start, long End)> DataExtents(string path)
    {
        using var handle = File.OpenHandle(path);
        int fd = (int)handle.DangerousGetHandle();
        long length = RandomAccess.GetLength(handle);
        var extents = new List<(long, long)>();
        long at = 0;
        while (at < length)
        {
            long data = lseek(fd, at, SeekData);
            if (data < 0) break; // ENXIO: only a hole is left
            long hole = lseek(fd, data, SeekHole);
            extents.Add((data, hole));
            at = hole;
        }
        return extents;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern long lseek(int fd, long offset, int whence);
}
