using System.Net.Sockets;
using System.Text;

namespace QcowActors.Api.Tests.Support;

/// <summary>How the raw client ends its side after sending.</summary>
internal enum RawEnd
{
    /// <summary>Keep the connection open and read until the server closes it (or a timeout).</summary>
    Read,
    /// <summary>Send FIN (a body cut short), then read whatever comes back.</summary>
    HalfClose,
    /// <summary>Reset the connection without reading: a client that vanished.</summary>
    Reset,
}

/// <summary>
/// HTTP/1.1 over a bare socket, for requests HttpClient will not send: bodies cut short, broken
/// chunked encoding, a client that disconnects mid-upload.
/// </summary>
internal static class RawHttp
{
    /// <summary>
    /// What the server sent before closing ("" when it sent nothing or reset the connection).
    /// <paramref name="beforeEnd"/> runs after the body is sent and before the connection is ended as <paramref name="end"/> says.
    /// </summary>
    public static Task<string> SendAsync(Uri server, string head, byte[]? body = null, RawEnd end = RawEnd.Read, Func<Task>? beforeEnd = null)
        => SendBytesAsync(server, [.. Encoding.ASCII.GetBytes(head.Replace("\n", "\r\n") + "\r\n"), .. body ?? []], end, beforeEnd);

    /// <summary>The same with the request given byte for byte (bare LF, NUL or UTF-8 in the head).</summary>
    public static async Task<string> SendBytesAsync(Uri server, byte[] request, RawEnd end = RawEnd.Read, Func<Task>? beforeEnd = null)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(server.Host, server.Port);
        NetworkStream stream = client.GetStream();
        try
        {
            await stream.WriteAsync(request);
            await stream.FlushAsync();
        }
        catch (IOException)
        {
            // The server answered and closed before taking all of it (a 413, a 416 sent before the
            // body is read): its answer may still be waiting in the receive buffer.
        }
        if (beforeEnd is not null)
            await beforeEnd();
        switch (end)
        {
            case RawEnd.Reset:
                client.Client.LingerState = new LingerOption(true, 0);
                return "";
            case RawEnd.HalfClose:
                client.Client.Shutdown(SocketShutdown.Send);
                break;
        }

        var received = new MemoryStream();
        var buffer = new byte[16 * 1024];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, timeout.Token)) > 0)
                received.Write(buffer, 0, n);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            // A reset or a server that keeps the connection open: what arrived so far is the answer.
        }
        return Encoding.ASCII.GetString(received.ToArray());
    }
}
