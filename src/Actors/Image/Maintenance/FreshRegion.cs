using QcowActors.Actors.Io;

namespace QcowActors.Actors.Image.Maintenance;

/// <summary>
/// The fence of a metadata rewrite: it writes only past the end of the file as it was when the
/// rewrite began (clusters nothing refers to), and the header. Any other offset is a bug that would
/// damage live data or metadata, so it is refused before the write.
/// </summary>
internal sealed class FreshRegion(IImageFile file, long firstFreshByte)
{
    public ValueTask WriteAsync(ReadOnlyMemory<byte> data, long offset, CancellationToken ct)
    {
        if (offset < firstFreshByte)
            throw new FenceViolationException(offset >> 9, MetadataKind.Header,
                $"a metadata rewrite tried to write {data.Length} bytes at {offset}, below its fresh region at {firstFreshByte}");
        return file.WriteAsync(data, offset, ct);
    }
}
