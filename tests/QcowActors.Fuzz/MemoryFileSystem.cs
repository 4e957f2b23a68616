using QcowActors.Actors.Io;

namespace QcowActors.Fuzz;

/// <summary>One image file held in memory (a copy of the input: open may repair it), for the fuzz target's open path.</summary>
internal sealed class MemoryFileSystem(byte[] data) : IImageFileSystem
{
    /// <summary>The image's name; the directory does not exist, so the open marker is never found (a dirty bit still takes the repair path).</summary>
    public const string ImagePath = "/nonexistent-qcowactors-fuzz/fuzz.qcow2";
    public const string MarkerPath = "/nonexistent-qcowactors-fuzz/.fuzz.qcow2.open";

    private readonly MemoryImageFile _file = new(ImagePath, data);

    public IImageFile Open(string path, bool writable) => _file;
    public Task CreateAtomicAsync(string finalPath, IEnumerable<(long Offset, ReadOnlyMemory<byte> Bytes)> writes, long length, CancellationToken ct)
        => throw new NotSupportedException("the fuzz target creates no files");
    public void SyncDirectory(string directory) { }
    public void CreateMarker(string path) { }

    private sealed class MemoryImageFile(string path, byte[] data) : IImageFile
    {
        private byte[] _bytes = (byte[])data.Clone();
        private long _length = data.Length;

        public string Path { get; } = path;
        public long Length => _length;

        public ValueTask ReadAsync(Memory<byte> buffer, long offset, CancellationToken ct)
        {
            var span = buffer.Span;
            span.Clear(); // past the end reads as zeros
            if (offset < _length)
                _bytes.AsSpan((int)offset, (int)Math.Min(span.Length, _length - offset)).CopyTo(span);
            return ValueTask.CompletedTask;
        }

        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, long offset, CancellationToken ct)
        {
            long end = offset + data.Length;
            if (end > _bytes.Length) Array.Resize(ref _bytes, (int)end);
            data.Span.CopyTo(_bytes.AsSpan((int)offset));
            _length = Math.Max(_length, end);
            return ValueTask.CompletedTask;
        }

        public ValueTask FlushAsync(CancellationToken ct) => ValueTask.CompletedTask;
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
