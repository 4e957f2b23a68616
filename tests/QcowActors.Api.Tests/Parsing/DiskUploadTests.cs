using System.Collections.Concurrent;
using System.IO.Pipelines;
using QcowActors.Api.Streaming;
using Xunit;

namespace QcowActors.Api.Tests.Parsing;

/// <summary>The upload pump on its own: a Pipe stands in for the request body.</summary>
public sealed class DiskUploadTests
{
    private const int MiB = 1024 * 1024;

    private sealed class Recorder
    {
        public readonly ConcurrentQueue<(long Offset, byte[] Data)> Writes = new();
        public int InFlight;
        public int MaxInFlight;

        public async Task WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            MaxInFlight = Math.Max(MaxInFlight, Interlocked.Increment(ref InFlight));
            byte[] before = data.ToArray();
            Writes.Enqueue((offset, before)); // in the order the writes are issued
            await Task.Delay(5, ct); // the caller keeps filling another buffer meanwhile
            Assert.True(before.AsSpan().SequenceEqual(data.Span), $"buffer of the write at {offset} changed while the write was in flight");
            Interlocked.Decrement(ref InFlight);
        }

        public byte[] Assemble(long start, int length)
        {
            var disk = new byte[length];
            foreach (var (offset, data) in Writes)
                data.CopyTo(disk.AsSpan((int)(offset - start)));
            return disk;
        }
    }

    private static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Feeds the body in uneven pieces, as a socket would.</summary>
    private static async Task FeedAsync(PipeWriter writer, byte[] body, bool complete = true)
    {
        var random = new Random(7);
        for (int at = 0; at < body.Length;)
        {
            int n = Math.Min(random.Next(1, 300_000), body.Length - at);
            await writer.WriteAsync(body.AsMemory(at, n));
            at += n;
        }
        if (complete)
            await writer.CompleteAsync();
    }

    [Fact]
    public async Task Body_is_written_in_order_in_chunks_aligned_to_MiB_boundaries_after_the_first()
    {
        var pipe = new Pipe();
        var recorder = new Recorder();
        byte[] body = Pattern(5 * MiB, 1);
        long start = MiB / 2;
        Task feed = FeedAsync(pipe.Writer, body);

        UploadResult result = await new DiskUpload(recorder.WriteAsync, 2 * MiB).CopyAsync(pipe.Reader, start, body.Length, start + body.Length, default);
        await feed;

        Assert.Equal(new UploadResult(UploadOutcome.Completed, body.Length), result);
        Assert.Equal([(start, 3 * MiB / 2), (2L * MiB, 2 * MiB), (4L * MiB, 3 * MiB / 2)], recorder.Writes.Select(w => (w.Offset, w.Data.Length)));
        Assert.Equal(body, recorder.Assemble(start, body.Length));
        Assert.InRange(recorder.MaxInFlight, 1, 2); // up to two engine writes overlap the next fill, never more
    }

    [Fact]
    public async Task Body_of_undeclared_length_may_end_anywhere_before_the_end_of_the_disk()
    {
        var pipe = new Pipe();
        var recorder = new Recorder();
        byte[] body = Pattern(3 * MiB + 17, 2);
        Task feed = FeedAsync(pipe.Writer, body);

        UploadResult result = await new DiskUpload(recorder.WriteAsync, MiB).CopyAsync(pipe.Reader, 0, null, 64 * MiB, default);
        await feed;

        Assert.Equal(new UploadResult(UploadOutcome.Completed, body.Length), result);
        Assert.Equal(body, recorder.Assemble(0, body.Length));
    }

    [Fact]
    public async Task Body_shorter_than_declared_is_too_short_and_its_tail_is_not_written()
    {
        var pipe = new Pipe();
        var recorder = new Recorder();
        byte[] body = Pattern(MiB + 100, 3);
        Task feed = FeedAsync(pipe.Writer, body);

        UploadResult result = await new DiskUpload(recorder.WriteAsync, MiB).CopyAsync(pipe.Reader, 0, 2 * MiB, 2 * MiB, default);
        await feed;

        Assert.Equal(new UploadResult(UploadOutcome.TooShort, MiB + 100), result);
        Assert.Equal([0L], recorder.Writes.Select(w => w.Offset));
    }

    [Fact]
    public async Task Body_longer_than_declared_is_too_long_and_its_last_chunk_is_not_written()
    {
        var pipe = new Pipe();
        var recorder = new Recorder();
        byte[] body = Pattern(2 * MiB + 1, 4);
        Task feed = FeedAsync(pipe.Writer, body);

        UploadResult result = await new DiskUpload(recorder.WriteAsync, MiB).CopyAsync(pipe.Reader, 0, 2 * MiB, 2 * MiB, default);

        Assert.Equal(UploadOutcome.TooLong, result.Outcome);
        Assert.Equal([0L], recorder.Writes.Select(w => w.Offset));
        await pipe.Reader.CompleteAsync();
        await feed;
    }

    [Fact]
    public async Task Body_of_undeclared_length_past_the_end_of_the_disk_is_refused()
    {
        var pipe = new Pipe();
        var recorder = new Recorder();
        byte[] body = Pattern(MiB + 1, 5);
        Task feed = FeedAsync(pipe.Writer, body);

        UploadResult result = await new DiskUpload(recorder.WriteAsync, 4 * MiB).CopyAsync(pipe.Reader, 0, null, MiB, default);

        Assert.Equal(UploadOutcome.PastEndOfDisk, result.Outcome);
        Assert.Empty(recorder.Writes);
        await pipe.Reader.CompleteAsync();
        await feed;
    }

    [Fact]
    public async Task Empty_body_writes_nothing_and_completes()
    {
        var pipe = new Pipe();
        var recorder = new Recorder();
        await pipe.Writer.CompleteAsync();

        UploadResult result = await new DiskUpload(recorder.WriteAsync, MiB).CopyAsync(pipe.Reader, 0, null, MiB, default);

        Assert.Equal(new UploadResult(UploadOutcome.Completed, 0), result);
        Assert.Empty(recorder.Writes);
    }

    [Fact]
    public async Task Failed_body_read_waits_for_the_write_in_flight_before_returning_its_buffer()
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0)); // no back-pressure: the whole chunk is queued up front
        var writeStarted = new TaskCompletionSource();
        var releaseWrite = new TaskCompletionSource();
        bool writeFinished = false;
        async Task Write(long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            writeStarted.TrySetResult();
            await releaseWrite.Task;
            writeFinished = true;
        }
        await pipe.Writer.WriteAsync(Pattern(MiB, 6));

        Task<UploadResult> copy = new DiskUpload(Write, MiB).CopyAsync(pipe.Reader, 0, 4 * MiB, 4 * MiB, default);
        await writeStarted.Task;
        await pipe.Writer.CompleteAsync(new IOException("connection reset"));
        await Task.Delay(50);
        Assert.False(copy.IsCompleted, "the pump returned while the engine still held its buffer");
        releaseWrite.SetResult();

        // Surfaced as the 400 BadHttpRequestException (an IOException) the endpoint maps to a problem.
        await Assert.ThrowsAnyAsync<IOException>(() => copy);
        Assert.True(writeFinished);
    }
}
