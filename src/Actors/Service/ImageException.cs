namespace QcowActors.Actors.Service;

/// <summary>Why an image operation failed, in terms a client can act on (mapped once to HTTP statuses).</summary>
public enum ImageError
{
    /// <summary>400: malformed argument (bad name, bad size, bad cluster size).</summary>
    InvalidArgument,
    /// <summary>400: a size beyond a QEMU limit (detail names the limit).</summary>
    LimitExceeded,
    /// <summary>404</summary>
    NotFound,
    /// <summary>409: the name is taken.</summary>
    AlreadyExists,
    /// <summary>409: state conflict (e.g. image busy being deleted).</summary>
    Conflict,
    /// <summary>416: range outside the disk.</summary>
    OutOfRange,
    /// <summary>422: the image uses a feature the server does not serve (Feature names it), or is corrupt / read-only.</summary>
    Unsupported,
    /// <summary>507: no space left on the store's disk (the image stays consistent).</summary>
    DiskFull,
    /// <summary>503: the store is shutting down.</summary>
    Unavailable,
}

public sealed class ImageException(ImageError error, string detail, string? feature = null, Exception? inner = null)
    : Exception(detail, inner)
{
    public ImageError Error { get; } = error;
    public string? Feature { get; } = feature;
}
