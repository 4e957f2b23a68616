namespace QcowActors.Api;

/// <summary>Log messages of the HTTP layer (source-generated: the data paths are hot).</summary>
internal static partial class Log
{
    public const string Category = "QcowActors.Api";

    [LoggerMessage(EventId = 1, Level = LogLevel.Error,
        Message = "Read of {Image} failed at offset {Offset} after the response started; aborting the connection")]
    public static partial void ReadFailedMidStream(this ILogger logger, Exception exception, string image, long offset);

    [LoggerMessage(EventId = 2, Level = LogLevel.Debug,
        Message = "Client went away during a read of {Image} at offset {Offset}")]
    public static partial void ReadAbortedByClient(this ILogger logger, string image, long offset);

    [LoggerMessage(EventId = 3, Level = LogLevel.Debug,
        Message = "Client went away during an upload to {Image} after {Bytes} bytes; nothing acknowledged")]
    public static partial void UploadAbortedByClient(this ILogger logger, string image, long bytes);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information,
        Message = "Upload to {Image} at offset {Offset} rejected: {Reason}")]
    public static partial void UploadRejected(this ILogger logger, string image, long offset, string reason);
}
