using Microsoft.AspNetCore.Mvc;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Api.Problems;

/// <summary>The one place where engine and format errors become HTTP statuses.</summary>
internal static class ProblemMapper
{
    /// <summary>A problem for exceptions a client can act on; null for bugs (they stay 500).</summary>
    public static ProblemDetails? TryMap(Exception exception) => exception switch
    {
        ImageException e => WithExtension(ApiProblems.Create(StatusFor(e.Error), e.Message), "feature", e.Feature),
        QcowFormatException e => WithExtension(
            WithExtension(ApiProblems.Create(StatusFor(e.Problem), e.Message), "field", e.Field),
            "feature", e.Feature),
        // Kestrel's own verdicts on the request: truncated or malformed body (400), body over the
        // endpoint's limit (413), body too slow (408).
        BadHttpRequestException e => ApiProblems.Create(e.StatusCode, e.Message),
        _ => null,
    };

    public static int StatusFor(ImageError error) => error switch
    {
        ImageError.InvalidArgument or ImageError.LimitExceeded => StatusCodes.Status400BadRequest,
        ImageError.NotFound => StatusCodes.Status404NotFound,
        ImageError.AlreadyExists or ImageError.Conflict => StatusCodes.Status409Conflict,
        ImageError.OutOfRange => StatusCodes.Status416RangeNotSatisfiable,
        ImageError.Unsupported => StatusCodes.Status422UnprocessableEntity,
        ImageError.DiskFull => StatusCodes.Status507InsufficientStorage,
        ImageError.Unavailable => StatusCodes.Status503ServiceUnavailable,
        _ => StatusCodes.Status500InternalServerError,
    };

    /// <summary>A corrupt or unsupported image file is a valid request on an unusable image (422); a size over a QEMU limit is a bad request.</summary>
    public static int StatusFor(QcowProblem problem) => problem switch
    {
        QcowProblem.LimitExceeded => StatusCodes.Status400BadRequest,
        QcowProblem.Invalid or QcowProblem.Unsupported => StatusCodes.Status422UnprocessableEntity,
        _ => StatusCodes.Status500InternalServerError,
    };

    private static ProblemDetails WithExtension(ProblemDetails problem, string key, string? value)
    {
        if (value is not null)
            problem.Extensions[key] = value;
        return problem;
    }
}
