using Microsoft.Win32.SafeHandles;

namespace QcowActors.Testing;

/// <summary>
/// The raw virtual disk a test expects: kept in step with every acknowledged write, then compared
/// with what the server returns or exported for `qemu-img compare`. Small disks live in a byte array;
/// big ones in a sparse temp file so a 2 GiB model costs only what was written.
/// </summary>
public sealed class DiskModel : IDisposable
{
    /// <summary>Disks up to this size are modelled in memory by <see cref="Create"/>.</summary>
    public const long InMemoryLimit = 256L * 1024 * 1024;

    private const int Chunk = 1024 * 1024;

    private readonly byte[]? _bytes;
    private readonly SafeFileHandle? _file;
    private readonly string? _filePath;

    private DiskModel(long size, byte[]? bytes, SafeFileHandle? file, string? filePath)
    {
        Size = size;
        _bytes = bytes;
        _file = file;
        _filePath = filePath;
    }

    public long Size { get; }

    public bool IsInMemory => _bytes is not null;

    /// <summary>An all-zero disk: in memory up to <see cref="InMemoryLimit"/>, else a sparse file in <paramref name="directory"/>.</summary>
    public static DiskModel Create(long size, string? directory = null)
        => size <= InMemoryLimit ? InMemory(size) : FileBacked(size, Path.Combine(directory ?? Path.GetTempPath(), $"model-{Guid.NewGuid():N}.raw"));

    public static DiskModel InMemory(long size)
    {
        if (size > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "too big for an in-memory model; use FileBacked");
        }
        return new DiskModel(size, new byte[size], null, null);
    }

    /// <summary>A sparse file of <paramref name="size"/> bytes at <paramref name="path"/>, deleted on dispose.</summary>
    public static DiskModel FileBacked(long size, string path)
    {
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read, FileOptions.DeleteOnClose);
        RandomAccess.SetLength(handle, size);
        return new DiskModel(size, null, handle, path);
    }

    /// <summary>A model holding the content of a raw file (e.g. from qemu-img convert -O raw).</summary>
    public static DiskModel FromRawFile(string rawPath, string? directory = null)
    {
        var length = new FileInfo(rawPath).Length;
        var model = Create(length, directory);
        using var source = File.OpenHandle(rawPath);
        var buffer = new byte[Chunk];
        for (long offset = 0; offset < length; offset += Chunk)
        {
            var n = (int)Math.Min(Chunk, length - offset);
            ReadExactly(source, buffer.AsSpan(0, n), offset);
            if (buffer.AsSpan(0, n).ContainsAnyExcept((byte)0))
            {
                model.Write(offset, buffer.AsSpan(0, n));
            }
        }
        return model;
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        CheckRange(offset, data.Length);
        if (_bytes is not null)
        {
            data.CopyTo(_bytes.AsSpan(checked((int)offset)));
        }
        else
        {
            RandomAccess.Write(_file!, data, offset);
        }
    }

    public void Zero(long offset, long length)
    {
        CheckRange(offset, length);
        if (_bytes is not null)
        {
            _bytes.AsSpan(checked((int)offset), checked((int)length)).Clear();
            return;
        }
        var zeros = new byte[(int)Math.Min(Chunk, length)];
        for (long done = 0; done < length; done += zeros.Length)
        {
            RandomAccess.Write(_file!, zeros.AsSpan(0, (int)Math.Min(zeros.Length, length - done)), offset + done);
        }
    }

    public void Read(long offset, Span<byte> destination)
    {
        CheckRange(offset, destination.Length);
        if (_bytes is not null)
        {
            _bytes.AsSpan(checked((int)offset), destination.Length).CopyTo(destination);
        }
        else
        {
            ReadExactly(_file!, destination, offset);
        }
    }

    public byte[] Read(long offset, int length)
    {
        var result = new byte[length];
        Read(offset, result);
        return result;
    }

    /// <summary>The whole disk (in-memory models only, or small file-backed ones).</summary>
    public byte[] ToArray() => _bytes is not null ? (byte[])_bytes.Clone() : Read(0, checked((int)Size));

    /// <summary>
    /// Writes the disk as a sparse raw file (all-zero megabytes are skipped), for
    /// `qemu-img compare -f qcow2 -F raw image raw`. Returns <paramref name="path"/>.
    /// </summary>
    public string ExportRaw(string path)
    {
        using var target = File.OpenHandle(path, FileMode.Create, FileAccess.Write);
        RandomAccess.SetLength(target, Size);
        var buffer = new byte[Chunk];
        for (long offset = 0; offset < Size; offset += Chunk)
        {
            var span = buffer.AsSpan(0, (int)Math.Min(Chunk, Size - offset));
            Read(offset, span);
            if (span.ContainsAnyExcept((byte)0))
            {
                RandomAccess.Write(target, span, offset);
            }
        }
        return path;
    }

    /// <summary>
    /// Null when <paramref name="actual"/> equals the model at <paramref name="offset"/>; otherwise a
    /// message naming the first differing disk offset and both bytes.
    /// </summary>
    public string? Describe(long offset, ReadOnlySpan<byte> actual)
    {
        var expected = Read(offset, actual.Length);
        var index = FirstDifference(expected, actual);
        return index < 0
            ? null
            : $"first difference at disk offset {offset + index} (0x{offset + index:x}): expected 0x{expected[index]:x2}, got 0x{actual[(int)index]:x2} " +
              $"(compared {actual.Length} bytes from offset {offset})";
    }

    /// <summary>Index of the first differing byte, or -1 (lengths must match; a length mismatch reports the shorter length).</summary>
    public static long FirstDifference(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.SequenceEqual(b))
        {
            return -1;
        }
        return a.CommonPrefixLength(b);
    }

    public void Dispose() => _file?.Dispose();

    public override string ToString() => IsInMemory ? $"in-memory model of {Size} bytes" : $"model of {Size} bytes in {_filePath}";

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > Size)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {offset + length}) is outside the {Size}-byte disk");
        }
    }

    private static void ReadExactly(SafeFileHandle handle, Span<byte> destination, long offset)
    {
        while (destination.Length > 0)
        {
            var n = RandomAccess.Read(handle, destination, offset);
            if (n == 0)
            {
                destination.Clear(); // past the end of a sparse file: zeros
                return;
            }
            destination = destination[n..];
            offset += n;
        }
    }
}
