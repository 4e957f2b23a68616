using System.Net;

namespace QcowActors.Api.Tests.Support;

internal static class Bodies
{
    public static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}

/// <summary>A body HttpClient sends chunked: its length is unknown up front.</summary>
internal sealed class ChunkedContent(byte[] data, int piece = 100_000) : HttpContent
{
    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        for (int at = 0; at < data.Length; at += piece)
        {
            await stream.WriteAsync(data.AsMemory(at, Math.Min(piece, data.Length - at)));
            await stream.FlushAsync();
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
