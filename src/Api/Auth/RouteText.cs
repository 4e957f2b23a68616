using Microsoft.AspNetCore.Routing.Patterns;

namespace QcowActors.Api.Auth;

/// <summary>
/// A route pattern written the one way the scope table uses: "/" + segments, parameters as
/// {name} or {**name} without constraints or defaults, no trailing slash. Groups combine
/// patterns with a slash between them ("/images" + "" is "/images/"), so raw text will not do.
/// </summary>
internal static class RouteText
{
    public static string Of(RoutePattern pattern)
        => "/" + string.Join('/', pattern.PathSegments.Select(s => string.Concat(s.Parts.Select(Part))));

    private static string Part(RoutePatternPart part) => part switch
    {
        RoutePatternLiteralPart literal => literal.Content,
        RoutePatternSeparatorPart separator => separator.Content,
        RoutePatternParameterPart { IsCatchAll: true } parameter => "{**" + parameter.Name + "}",
        RoutePatternParameterPart parameter => "{" + parameter.Name + "}",
        _ => part.ToString() ?? "",
    };
}
