using System.Collections.Concurrent;
using System.IO.Pipelines;
using QcowActors.Actors.Service;

namespace QcowActors.Api.Tests.Support;

/// <summary>
/// A sparse in-memory <see cref="IImageService"/> with the engine's error semantics, so the HTTP
/// layer can be tested on its own. It records every call, and can be told to fail.
/// </summary>
internal sealed class InMemoryImageService : IImageService
{
    private const int PageSize = 64 * 1024;
    private readonly ConcurrentDictionary<string, Image> _images = new();
    private readonly ConcurrentQueue<Call> _calls = new();

    /// <summary>A call the HTTP layer made, in order.</summary>
    public sealed record Call(string Operation, string Name, long Offset = 0, long Length = 0);

    public IReadOnlyList<Call> Calls => [.. _calls];

    /// <summary>Thrown by every call naming this image (to test the error mapping).</summary>
    public Exception? FailAll { get; set; }
    /// <summary>Thrown by PlanReadAsync (a mapping error: before any header is sent).</summary>
    public Exception? FailPlan { get; set; }
    /// <summary>Streams this many bytes of a plan, then throws an IOException (after headers are sent).</summary>
    public long? FailCopyAfter { get; set; }

    public Task<ImageInfo> CreateAsync(string name, long virtualSize, int? clusterSize, int? refcountBits, CancellationToken ct)
    {
        Record("create", name, 0, virtualSize);
        if (clusterSize is { } c && (c < 512 || c > 2 * 1024 * 1024 || (c & (c - 1)) != 0))
            throw new ImageException(ImageError.InvalidArgument, $"cluster size {c} is not a power of two between 512 and 2 MiB");
        var image = new Image(name, virtualSize, clusterSize ?? 65536, refcountBits ?? 16);
        if (!_images.TryAdd(name, image))
            throw new ImageException(ImageError.AlreadyExists, $"image '{name}' already exists");
        return Task.FromResult(image.Info());
    }

    public Task<IReadOnlyList<ImageInfo>> ListAsync(CancellationToken ct)
        => Task.FromResult<IReadOnlyList<ImageInfo>>([.. _images.Values.Select(i => i.Info()).OrderBy(i => i.Name, StringComparer.Ordinal)]);

    public Task<ImageInfo> GetInfoAsync(string name, CancellationToken ct) => Task.FromResult(Get(name, "info").Info());

    public Task DeleteAsync(string name, CancellationToken ct)
    {
        Get(name, "delete");
        _images.TryRemove(name, out _);
        return Task.CompletedTask;
    }

    public Task<DiskReadPlan> PlanReadAsync(string name, long offset, long length, CancellationToken ct)
    {
        Image image = Get(name, "plan", offset, length);
        if (FailPlan is { } failure)
            throw failure;
        if (offset < 0 || length < 0 || offset + length > image.Size)
            throw new ImageException(ImageError.OutOfRange, $"read [{offset}, {offset + length}) outside the disk");
        return Task.FromResult<DiskReadPlan>(new Plan(image, offset, length, FailCopyAfter));
    }

    public async Task WriteAsync(string name, long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        Image image = Get(name, "write", offset, data.Length);
        if (offset + data.Length > image.Size)
            throw new ImageException(ImageError.OutOfRange, $"write [{offset}, {offset + data.Length}) outside the disk");
        await Task.Yield(); // like the engine, complete later so the caller's buffer is still in use meanwhile
        image.Write(offset, data.Span);
    }

    public Task ZeroAsync(string name, long offset, long length, CancellationToken ct)
    {
        Image image = Get(name, "zero", offset, length);
        if (offset + length > image.Size)
            throw new ImageException(ImageError.OutOfRange, $"zero [{offset}, {offset + length}) outside the disk");
        image.Zero(offset, length);
        return Task.CompletedTask;
    }

    public Task FlushAsync(string name, CancellationToken ct)
    {
        Get(name, "flush");
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<DiskExtent>> GetExtentsAsync(string name, CancellationToken ct)
        => Task.FromResult(Get(name, "extents").Extents());

    /// <summary>Reads the disk directly (test assertions).</summary>
    public byte[] Read(string name, long offset, int length)
    {
        var buffer = new byte[length];
        _images[name].Read(offset, buffer);
        return buffer;
    }

    private Image Get(string name, string operation, long offset = 0, long length = 0)
    {
        Record(operation, name, offset, length);
        if (FailAll is { } failure)
            throw failure;
        return _images.TryGetValue(name, out Image? image)
            ? image
            : throw new ImageException(ImageError.NotFound, $"image '{name}' not found");
    }

    private void Record(string operation, string name, long offset, long length) => _calls.Enqueue(new Call(operation, name, offset, length));

    private sealed class Image(string name, long size, int clusterSize, int refcountBits)
    {
        private readonly Dictionary<long, byte[]> _pages = [];
        public long Size { get; } = size;

        public ImageInfo Info()
        {
            lock (_pages)
                return new ImageInfo(name, "qcow2", 3, Size, (long)_pages.Count * PageSize, clusterSize, refcountBits, null, false);
        }

        public void Write(long offset, ReadOnlySpan<byte> data)
        {
            lock (_pages)
            {
                while (!data.IsEmpty)
                {
                    long page = offset / PageSize;
                    int within = (int)(offset % PageSize);
                    int n = Math.Min(PageSize - within, data.Length);
                    if (!_pages.TryGetValue(page, out byte[]? bytes))
                        _pages[page] = bytes = new byte[PageSize];
                    data[..n].CopyTo(bytes.AsSpan(within));
                    data = data[n..];
                    offset += n;
                }
            }
        }

        public void Zero(long offset, long length)
        {
            lock (_pages)
            {
                long end = offset + length;
                while (offset < end)
                {
                    long page = offset / PageSize;
                    int within = (int)(offset % PageSize);
                    int n = (int)Math.Min(PageSize - within, end - offset);
                    if (within == 0 && n == PageSize)
                        _pages.Remove(page);
                    else if (_pages.TryGetValue(page, out byte[]? bytes))
                        bytes.AsSpan(within, n).Clear();
                    offset += n;
                }
            }
        }

        public void Read(long offset, Span<byte> destination)
        {
            lock (_pages)
            {
                while (!destination.IsEmpty)
                {
                    long page = offset / PageSize;
                    int within = (int)(offset % PageSize);
                    int n = Math.Min(PageSize - within, destination.Length);
                    if (_pages.TryGetValue(page, out byte[]? bytes))
                        bytes.AsSpan(within, n).CopyTo(destination);
                    else
                        destination[..n].Clear();
                    destination = destination[n..];
                    offset += n;
                }
            }
        }

        public IReadOnlyList<DiskExtent> Extents()
        {
            var extents = new List<DiskExtent>();
            lock (_pages)
            {
                for (long start = 0; start < Size; start += PageSize)
                {
                    long length = Math.Min(PageSize, Size - start);
                    bool data = _pages.ContainsKey(start / PageSize);
                    if (extents.Count > 0 && extents[^1].Zero == !data)
                        extents[^1] = extents[^1] with { Length = extents[^1].Length + length };
                    else
                        extents.Add(new DiskExtent(start, length, !data, !data));
                }
            }
            return extents;
        }
    }

    private sealed class Plan(Image image, long offset, long length, long? failAfter) : DiskReadPlan
    {
        public override long Offset => offset;
        public override long Length => length;

        public override async Task CopyToAsync(PipeWriter destination, CancellationToken ct)
        {
            long done = 0;
            while (done < length)
            {
                int n = (int)Math.Min(256 * 1024, length - done);
                if (failAfter is { } limit && done + n > limit)
                {
                    n = (int)(limit - done);
                    image.Read(offset + done, destination.GetSpan(n)[..n]);
                    destination.Advance(n);
                    await destination.FlushAsync(ct);
                    throw new IOException("injected read failure");
                }
                image.Read(offset + done, destination.GetSpan(n)[..n]);
                destination.Advance(n);
                await destination.FlushAsync(ct);
                done += n;
            }
        }

        public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
