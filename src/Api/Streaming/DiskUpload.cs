using System.Buffers;
using System.IO.Pipelines;

namespace QcowActors.Api.Streaming;

/// <summary>How an upload body ended.</summary>
internal enum UploadOutcome
{
    /// <summary>Every byte written; the body ended where it should.</summary>
    Completed,
    /// <summary>The body ended before the declared length (the missing tail was not written).</summary>
    TooShort,
    /// <summary>The body went on past the declared length (the last chunk was not written).</summary>
    TooLong,
    /// <summary>A body of undeclared length went on past the end of the disk.</summary>
    PastEndOfDisk,
}

internal readonly record struct UploadResult(UploadOutcome Outcome, long BytesReceived);

/// <summary>
/// Streams a request body into the engine in chunks from two pooled buffers: one is being written
/// while the next fills from the socket, so network and disk overlap and memory stays at two chunks
/// whatever the body size. Writes are issued one at a time and in order.
/// </summary>
internal sealed class DiskUpload(Func<long, ReadOnlyMemory<byte>, CancellationToken, Task> write, int chunkSize)
{
    /// <summary>
    /// Copies <paramref name="body"/> to [start, limit). With <paramref name="declaredLength"/> the body
    /// must be exactly that long (limit = start + length); without it the body may stop anywhere up to
    /// limit (the end of the disk). The chunk that completes the body is held back until the body is
    /// seen to end, so an over-long body never writes its last chunk.
    /// </summary>
    public async Task<UploadResult> CopyAsync(PipeReader body, long start, long? declaredLength, long limit, CancellationToken ct)
    {
        // No bigger than the body can be (a 4 KiB PUT rents 4 KiB, not two whole chunks, which the
        // shared pool cannot keep for 64 concurrent requests), and the second buffer only when a
        // second chunk comes.
        int size = (int)Math.Min(chunkSize, Math.Max(1, limit - start));
        byte[] filling = ArrayPool<byte>.Shared.Rent(size);
        byte[]? draining = null;
        Task pending = Task.CompletedTask;
        try
        {
            long position = start;
            while (true)
            {
                int want = (int)(ChunkPlanner.NextEnd(position, chunkSize, limit) - position);
                (int got, bool ended) = want == 0
                    ? (0, !await HasMoreAsync(body, ct))
                    : await FillAsync(body, filling.AsMemory(0, want), ct);
                long next = position + got;

                if (!ended && next == limit && !await HasMoreAsync(body, ct))
                    ended = true;
                if (!ended && next == limit)
                {
                    await pending;
                    return new UploadResult(declaredLength is null ? UploadOutcome.PastEndOfDisk : UploadOutcome.TooLong, next - start + 1);
                }
                if (ended && declaredLength is not null && next < limit)
                {
                    await pending;
                    return new UploadResult(UploadOutcome.TooShort, next - start);
                }

                await pending;
                if (got > 0)
                {
                    pending = write(position, filling.AsMemory(0, got), ct);
                    if (!ended)
                    {
                        draining ??= ArrayPool<byte>.Shared.Rent(size);
                        (filling, draining) = (draining, filling);
                    }
                }
                position = next;
                if (ended)
                {
                    await pending;
                    return new UploadResult(UploadOutcome.Completed, position - start);
                }
            }
        }
        finally
        {
            // The engine may still be reading a buffer if the body read failed mid-write: wait for
            // it before the buffer goes back to the pool. Its own failure, if any, was either already
            // thrown above or is secondary to the failure propagating now.
            try
            {
                await pending;
            }
            catch (Exception)
            {
            }
            ArrayPool<byte>.Shared.Return(filling);
            if (draining is not null) ArrayPool<byte>.Shared.Return(draining);
        }
    }

    /// <summary>Fills <paramref name="destination"/>; ended = the body completed before it was full.</summary>
    private static async ValueTask<(int Got, bool Ended)> FillAsync(PipeReader body, Memory<byte> destination, CancellationToken ct)
    {
        int got = 0;
        while (got < destination.Length)
        {
            ReadResult result = await body.ReadAsync(ct);
            if (result.IsCanceled)
                throw new OperationCanceledException("the request body read was canceled");
            ReadOnlySequence<byte> buffer = result.Buffer;
            int take = (int)Math.Min(buffer.Length, destination.Length - got);
            buffer.Slice(0, take).CopyTo(destination.Span[got..]);
            got += take;
            body.AdvanceTo(buffer.GetPosition(take));
            if (result.IsCompleted && take == buffer.Length)
                return (got, true);
        }
        return (got, false);
    }

    /// <summary>True when at least one more body byte arrives; consumes nothing.</summary>
    private static async ValueTask<bool> HasMoreAsync(PipeReader body, CancellationToken ct)
    {
        ReadResult result = await body.ReadAsync(ct);
        if (result.IsCanceled)
            throw new OperationCanceledException("the request body read was canceled");
        bool more = !result.Buffer.IsEmpty;
        body.AdvanceTo(result.Buffer.Start, more ? result.Buffer.Start : result.Buffer.End);
        return more;
    }
}
