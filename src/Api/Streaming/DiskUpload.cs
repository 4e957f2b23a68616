using System.Buffers;
using System.IO.Pipelines;
using QcowActors.Api.Http;

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
/// Streams a request body into the engine in chunks from pooled buffers: up to two are being
/// written while the next fills from the socket, so network and disk overlap and memory stays at
/// three chunks whatever the body size. Writes are issued in order.
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
        // No bigger than the body can be (a 4 KiB PUT rents 4 KiB, not whole chunks, which the
        // shared pool cannot keep for 64 concurrent requests); more buffers only as chunks come.
        int size = (int)Math.Min(chunkSize, Math.Max(1, limit - start));
        byte[]? filling = ArrayPool<byte>.Shared.Rent(size);
        var writes = new Queue<(Task Write, byte[] Buffer)>();
        var spare = new Stack<byte[]>();
        try
        {
            long position = start;
            while (true)
            {
                int want = (int)(ChunkPlanner.NextEnd(position, chunkSize, limit) - position);
                (int got, bool ended) = want == 0
                    ? (0, !await HasMoreAsync(body, ct))
                    : await FillAsync(body, filling!.AsMemory(0, want), ct);
                long next = position + got;

                if (!ended && next == limit && !await HasMoreAsync(body, ct))
                    ended = true;
                if (!ended && next == limit)
                {
                    await DrainAsync(writes, spare);
                    return new UploadResult(declaredLength is null ? UploadOutcome.PastEndOfDisk : UploadOutcome.TooLong, next - start + 1);
                }
                if (ended && declaredLength is not null && next < limit)
                {
                    await DrainAsync(writes, spare);
                    return new UploadResult(UploadOutcome.TooShort, next - start);
                }

                if (got > 0)
                {
                    if (writes.Count == WritesInFlight)
                    {
                        var (oldest, buffer) = writes.Dequeue();
                        await oldest;
                        spare.Push(buffer);
                    }
                    writes.Enqueue((write(position, filling!.AsMemory(0, got), ct), filling!));
                    filling = ended ? null : spare.TryPop(out var reuse) ? reuse : ArrayPool<byte>.Shared.Rent(size);
                }
                position = next;
                if (ended)
                {
                    await DrainAsync(writes, spare);
                    return new UploadResult(UploadOutcome.Completed, position - start);
                }
            }
        }
        finally
        {
            // The engine may still be reading buffers if the body read failed mid-write: wait for
            // them before they go back to the pool. Their own failures, if any, were either already
            // thrown above or are secondary to the failure propagating now.
            while (writes.TryDequeue(out var w))
            {
                try
                {
                    await w.Write;
                }
                catch (Exception)
                {
                }
                spare.Push(w.Buffer);
            }
            if (filling is not null) ArrayPool<byte>.Shared.Return(filling);
            foreach (var buffer in spare) ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Engine writes of one upload in flight while the next chunk fills: two, so a write that
    /// waits (the disk queue of its write-back, a metadata round trip) does not stall the socket.
    /// </summary>
    private const int WritesInFlight = 2;

    /// <summary>Waits for every write in order; the first failure is thrown (the rest are left to the finally).</summary>
    private static async Task DrainAsync(Queue<(Task Write, byte[] Buffer)> writes, Stack<byte[]> spare)
    {
        while (writes.Count > 0)
        {
            var (w, buffer) = writes.Peek();
            await w;
            writes.Dequeue();
            spare.Push(buffer);
        }
    }

    /// <summary>Fills <paramref name="destination"/>; ended = the body completed before it was full.</summary>
    private static async ValueTask<(int Got, bool Ended)> FillAsync(PipeReader body, Memory<byte> destination, CancellationToken ct)
    {
        int got = 0;
        while (got < destination.Length)
        {
            ReadResult result;
            // Caught here rather than in a helper: a wrapping async method would allocate per socket read.
            try
            {
                result = await body.ReadAsync(ct);
            }
            catch (IOException e) when (IsMalformed(e, ct))
            {
                throw MalformedBody.From(e);
            }
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

    /// <summary>A body that broke HTTP's framing (not a client that left): a 400.</summary>
    private static bool IsMalformed(IOException e, CancellationToken ct) => e is not BadHttpRequestException && !ct.IsCancellationRequested;

    /// <summary>True when at least one more body byte arrives; consumes nothing.</summary>
    private static async ValueTask<bool> HasMoreAsync(PipeReader body, CancellationToken ct)
    {
        ReadResult result;
        try
        {
            result = await body.ReadAsync(ct);
        }
        catch (IOException e) when (IsMalformed(e, ct))
        {
            throw MalformedBody.From(e);
        }
        if (result.IsCanceled)
            throw new OperationCanceledException("the request body read was canceled");
        bool more = !result.Buffer.IsEmpty;
        body.AdvanceTo(result.Buffer.Start, more ? result.Buffer.Start : result.Buffer.End);
        return more;
    }
}
