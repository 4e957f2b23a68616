using System.Buffers.Binary;
using System.Net;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Pseudo-random disk content that is a pure function of (seed, disk offset), so gigabytes can be sent
/// and checked without being stored anywhere.
/// </summary>
internal static class Pattern
{
    /// <summary>Fills <paramref name="destination"/> with the bytes at disk offsets [position, position+length).</summary>
    public static void Fill(ulong seed, long position, Span<byte> destination)
    {
        Span<byte> word = stackalloc byte[8];
        var i = 0;
        while (i < destination.Length)
        {
            var p = position + i;
            BinaryPrimitives.WriteUInt64LittleEndian(word, Mix(seed, (ulong)p >> 3));
            var inWord = (int)(p & 7);
            if (inWord == 0 && destination.Length - i >= 8)
            {
                word.CopyTo(destination[i..]);
                i += 8;
            }
            else
            {
                destination[i++] = word[inWord];
            }
        }
    }

    /// <summary>SplitMix64 of the word index: cheap, and no two nearby words alike.</summary>
    private static ulong Mix(ulong seed, ulong index)
    {
        var z = seed + (index + 1) * 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>
/// A request body of <see cref="Pattern"/> bytes generated while it is sent. With knownLength it has a
/// Content-Length; without, HttpClient sends it chunked.
/// </summary>
internal sealed class PatternContent(ulong seed, long position, long length, bool knownLength) : HttpContent
{
    private const int Chunk = 1024 * 1024;

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        => SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        var buffer = new byte[Chunk];
        for (long done = 0; done < length; done += Chunk)
        {
            var n = (int)Math.Min(Chunk, length - done);
            Pattern.Fill(seed, position + done, buffer.AsSpan(0, n));
            await stream.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
        }
    }

    protected override bool TryComputeLength(out long length1)
    {
        length1 = length;
        return knownLength;
    }
}
