using Microsoft.AspNetCore.Diagnostics;

namespace QcowActors.Api.Problems;

/// <summary>Writes mapped exceptions as problem+json; anything unmapped falls through to the generic 500 problem.</summary>
internal sealed class ApiExceptionHandler(IProblemDetailsService problemDetails) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (ProblemMapper.TryMap(exception) is not { } problem)
            return false;
        httpContext.Response.StatusCode = problem.Status!.Value;
        // 503 is always "try again": say when (a moving or locked image is back within seconds).
        if (problem.Status == StatusCodes.Status503ServiceUnavailable)
            httpContext.Response.Headers.RetryAfter = "1";
        return await problemDetails.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            ProblemDetails = problem,
            Exception = exception,
        });
    }
}
