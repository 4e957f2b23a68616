using System.Buffers;
using System.Collections.Concurrent;
using QcowActors.Actors.Image;
using QcowActors.Actors.Io;
using QcowActors.Format;

namespace QcowActors.Actors.Service;

/// <summary>
/// Reads and inflates compressed clusters for requests (reads, and the copy-on-write of a partial
/// write into one). Inflating runs on the thread pool, never on the request's own thread (with
/// inline scheduling that is a socket thread), and at most <see cref="Slots"/> clusters are read
/// and inflated at a time process-wide: more would only queue for the same cores. What a request
/// holds afterwards is bounded by the request (<see cref="ReadAhead"/>).
/// </summary>
internal sealed class CompressedClusterReader
{
    private readonly SemaphoreSlim _slots;
    private readonly ConcurrentQueue<ClusterDecompressor>[] _idle = [new(), new()];

    public CompressedClusterReader(int slots)
    {
        Slots = slots;
        _slots = new SemaphoreSlim(slots, slots);
    }

    /// <summary>Clusters read and inflated at once, process-wide.</summary>
    public int Slots { get; }

    /// <summary>
    /// Clusters a sequential read keeps inflating ahead of the one it sends: enough to use every
    /// core on small clusters, two (about 4 MiB) at most on 2 MiB ones.
    /// </summary>
    public static int ReadAhead(int clusterSize) => Math.Clamp(2 * 1024 * 1024 / clusterSize, 2, Environment.ProcessorCount + 1);

    /// <summary>Reads the compressed data of <paramref name="entry"/> and inflates it into a pooled cluster buffer.</summary>
    /// <param name="virtualOffset">Where the cluster is on the disk, for the error a broken cluster gives.</param>
    public Task<InflatedCluster> InflateAsync(ImageHandle handle, ulong entry, long virtualOffset, CancellationToken ct)
        => InflateAsync(handle.File, handle.Layout, handle.CompressionType, handle.Image, entry, virtualOffset, ct);

    /// <summary>The same for any image file (a backing image has no handle).</summary>
    public async Task<InflatedCluster> InflateAsync(IImageFile file, ClusterLayout layout, byte compressionType, string image,
        ulong entry, long virtualOffset, CancellationToken ct)
    {
        await _slots.WaitAsync(ct).ConfigureAwait(false);
        int clusterBits = layout.ClusterBits;
        var descriptor = CompressedDescriptor.From(entry, clusterBits);
        // The sector count is bounded by its field's width; the span may run past the end of the
        // file (its last sector is rounded up), which reads as zeros.
        int inputLength = descriptor.MaxCompressedLength;
        byte[] input = ArrayPool<byte>.Shared.Rent(inputLength);
        byte[] output = ArrayPool<byte>.Shared.Rent(layout.ClusterSize);
        bool handedOut = false;
        try
        {
            await file.ReadAsync(input.AsMemory(0, inputLength), descriptor.HostOffset, ct).ConfigureAwait(false);
            string? error = await Task.Run(() => Inflate(compressionType, input.AsMemory(0, inputLength), output.AsSpan(0, layout.ClusterSize)), ct)
                .ConfigureAwait(false);
            if (error is not null && descriptor.HostOffset >= file.Length)
                error = $"its compressed data would start past the end of the file ({file.Length} bytes)";
            if (error is not null)
                throw new ImageException(ImageError.Unsupported,
                    $"image '{image}': the compressed cluster at virtual offset {virtualOffset} (host offset {descriptor.HostOffset}) cannot be inflated: {error}",
                    "corrupt compressed cluster");
            handedOut = true;
            return new InflatedCluster(output, layout.ClusterSize);
        }
        finally
        {
            _slots.Release();
            ArrayPool<byte>.Shared.Return(input);
            if (!handedOut) ArrayPool<byte>.Shared.Return(output);
        }
    }

    private string? Inflate(byte compressionType, ReadOnlyMemory<byte> input, Span<byte> output)
    {
        var idle = _idle[compressionType];
        if (!idle.TryDequeue(out var decompressor)) decompressor = new ClusterDecompressor(compressionType);
        string? error = decompressor.TryDecompress(input, output);
        // At most one idle decompressor per slot: more can never be in use at once.
        if (idle.Count < Slots) idle.Enqueue(decompressor);
        else decompressor.Dispose();
        return error;
    }

}

/// <summary>One inflated cluster in a pooled buffer, returned when disposed.</summary>
internal sealed class InflatedCluster(byte[] buffer, int length) : IDisposable
{
    private byte[]? _buffer = buffer;

    public ReadOnlySpan<byte> Bytes => (_buffer ?? throw new ObjectDisposedException(nameof(InflatedCluster))).AsSpan(0, length);

    public void Dispose()
    {
        var b = Interlocked.Exchange(ref _buffer, null);
        if (b is not null) ArrayPool<byte>.Shared.Return(b);
    }
}
