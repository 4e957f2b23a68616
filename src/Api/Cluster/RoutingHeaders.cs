using System.Linq.Expressions;
using System.Reflection;
using Microsoft.Extensions.Primitives;

namespace QcowActors.Api.Cluster;

/// <summary>
/// The request headers that steer routing between nodes. Only a peer sets them, and only a request
/// whose <see cref="Signature"/> verifies has them read (<see cref="EdgeGuard"/>); every other
/// request loses every header with the <see cref="Prefix"/> before anything else sees it.
/// </summary>
internal static class RoutingHeaders
{
    public const string Prefix = "X-QcowActors-";

    /// <summary>How often a node already forwarded this request (1 on the first hop, at most <see cref="ImageRouting.MaxHops"/>).</summary>
    public const string Hops = "X-QcowActors-Hops";

    /// <summary>When the forwarding node sent it, unix seconds; signed, so a captured signature is good for <see cref="ForwardingSignature.Window"/> only.</summary>
    public const string ForwardedAt = "X-QcowActors-Forwarded-At";

    /// <summary>Base64 HMAC-SHA256 (Cluster:ForwardingKey) over the method, the request target, the hops and the time (<see cref="ForwardingSignature"/>).</summary>
    public const string Signature = "X-QcowActors-Signature";

    /// <summary>Whether any header's name starts with <see cref="Prefix"/> (ASCII case-insensitive), without allocating.</summary>
    public static bool AnyIn(IHeaderDictionary headers)
    {
        var scanner = _scanner;
        Type type = headers.GetType();
        if (scanner?.Type != type)
            _scanner = scanner = new Scanner(type, Compile(type));
        return scanner.Scan is { } scan ? scan(headers) : AnyInBoxed(headers);
    }

    public static bool IsRoutingHeader(string name)
        => name.Length > Prefix.Length && name.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase);

    private sealed record Scanner(Type Type, Func<IHeaderDictionary, bool>? Scan);

    // One header type in practice (Kestrel's); a different one just replaces it.
    private static Scanner? _scanner;

    private static bool AnyInBoxed(IHeaderDictionary headers)
    {
        foreach (var header in headers)
            if (IsRoutingHeader(header.Key)) return true;
        return false;
    }

    private static bool IsRoutingHeader(KeyValuePair<string, StringValues> header) => IsRoutingHeader(header.Key);

    /// <summary>
    /// Foreach over the interface boxes the enumerator: one allocation per request. Kestrel's request
    /// headers (like HeaderDictionary) have a struct enumerator behind a public GetEnumerator(), which
    /// is what a foreach over the concrete type would use; this compiles that loop once per runtime
    /// type. Null when the type has no such pattern (then the boxed loop is used).
    /// </summary>
    private static Func<IHeaderDictionary, bool>? Compile(Type type)
    {
        MethodInfo? getEnumerator = type.GetMethod("GetEnumerator", BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes);
        Type? enumeratorType = getEnumerator?.ReturnType;
        if (getEnumerator is null || enumeratorType is null || !enumeratorType.IsValueType) return null;
        MethodInfo? moveNext = enumeratorType.GetMethod("MoveNext", BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes);
        PropertyInfo? current = enumeratorType.GetProperty("Current", BindingFlags.Public | BindingFlags.Instance);
        if (moveNext?.ReturnType != typeof(bool) || current?.PropertyType != typeof(KeyValuePair<string, StringValues>)) return null;
        try
        {
            var headers = Expression.Parameter(typeof(IHeaderDictionary), "headers");
            var enumerator = Expression.Variable(enumeratorType, "e");
            var done = Expression.Label(typeof(bool));
            var test = typeof(RoutingHeaders).GetMethod(nameof(IsRoutingHeader), BindingFlags.NonPublic | BindingFlags.Static, [typeof(KeyValuePair<string, StringValues>)])!;
            // The enumerators of header dictionaries hold nothing to dispose.
            var body = Expression.Block(typeof(bool), [enumerator],
                Expression.Assign(enumerator, Expression.Call(Expression.Convert(headers, type), getEnumerator)),
                Expression.Loop(
                    Expression.IfThenElse(
                        Expression.Call(enumerator, moveNext),
                        Expression.IfThen(Expression.Call(test, Expression.Property(enumerator, current)), Expression.Return(done, Expression.Constant(true))),
                        Expression.Return(done, Expression.Constant(false))),
                    done));
            return Expression.Lambda<Func<IHeaderDictionary, bool>>(body, headers).Compile();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or MemberAccessException)
        {
            return null;
        }
    }
}
