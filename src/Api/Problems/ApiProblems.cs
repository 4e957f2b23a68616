using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.WebUtilities;

namespace QcowActors.Api.Problems;

/// <summary>
/// RFC 9457 problem details with a type URI for every status this API sends, in the same form as
/// ASP.NET Core's defaults (which leave out 413, 416 and 507), applied to every problem, ours and
/// the framework's, through ProblemDetailsOptions.CustomizeProblemDetails.
/// </summary>
internal static class ApiProblems
{
    public const string ContentType = "application/problem+json";

    private static readonly Dictionary<int, string> Types = new()
    {
        [400] = "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        [401] = "https://tools.ietf.org/html/rfc9110#section-15.5.2",
        [403] = "https://tools.ietf.org/html/rfc9110#section-15.5.4",
        [404] = "https://tools.ietf.org/html/rfc9110#section-15.5.5",
        [405] = "https://tools.ietf.org/html/rfc9110#section-15.5.6",
        [408] = "https://tools.ietf.org/html/rfc9110#section-15.5.9",
        [409] = "https://tools.ietf.org/html/rfc9110#section-15.5.10",
        [411] = "https://tools.ietf.org/html/rfc9110#section-15.5.12",
        [413] = "https://tools.ietf.org/html/rfc9110#section-15.5.14",
        [415] = "https://tools.ietf.org/html/rfc9110#section-15.5.16",
        [416] = "https://tools.ietf.org/html/rfc9110#section-15.5.17",
        [422] = "https://tools.ietf.org/html/rfc9110#section-15.5.21",
        [500] = "https://tools.ietf.org/html/rfc9110#section-15.6.1",
        [503] = "https://tools.ietf.org/html/rfc9110#section-15.6.4",
        [507] = "https://tools.ietf.org/html/rfc4918#section-11.5",
    };

    /// <summary>Fills type and title where the producer left them out.</summary>
    public static void ApplyDefaults(ProblemDetails problem)
    {
        int status = problem.Status ?? 500;
        problem.Status = status;
        if (problem.Type is null && Types.TryGetValue(status, out string? type))
            problem.Type = type;
        problem.Title ??= ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? phrase : "Error";
    }

    /// <summary>
    /// For every problem written through IProblemDetailsService, including the framework's bodiless
    /// 404 and 405 answers that status code pages turn into problems: RFC 9457 wants a detail.
    /// </summary>
    public static void ApplyDefaults(ProblemDetailsContext context)
    {
        ProblemDetails problem = context.ProblemDetails;
        ApplyDefaults(problem);
        if (problem.Detail is not null)
            return;
        HttpRequest request = context.HttpContext.Request;
        string path = request.Path.ToUriComponent();
        problem.Detail = problem.Status switch
        {
            StatusCodes.Status404NotFound => $"no resource at {path}",
            StatusCodes.Status405MethodNotAllowed =>
                $"{request.Method} is not allowed on {path}; allowed: {context.HttpContext.Response.Headers.Allow}",
            _ => problem.Title,
        };
    }

    public static ProblemDetails Create(int status, string detail)
    {
        var problem = new ProblemDetails { Status = status, Detail = detail };
        ApplyDefaults(problem);
        return problem;
    }

    public static IResult Result(int status, string detail) => TypedResults.Problem(Create(status, detail));

    public static IResult BadRequest(string detail) => Result(StatusCodes.Status400BadRequest, detail);

    /// <summary>416 with "Content-Range: bytes */SIZE" so the client learns the disk size (RFC 9110 §15.5.17).</summary>
    public static IResult RangeNotSatisfiable(HttpResponse response, long size, string detail)
    {
        response.Headers.ContentRange = $"bytes */{size}";
        return Result(StatusCodes.Status416RangeNotSatisfiable, detail);
    }
}
