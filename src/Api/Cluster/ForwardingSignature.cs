using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using QcowActors.Actors.Cluster;

namespace QcowActors.Api.Cluster;

/// <summary>
/// How a node vouches for the routing headers of a request it forwards to another node: HMAC-SHA256
/// with Cluster:ForwardingKey over
/// <c>qcowactors-forward-v1 LF METHOD LF TARGET LF HOPS LF FORWARDED-AT</c> (UTF-8), where TARGET is
/// the request target as sent on the wire (path and query, as HttpClient writes it and Kestrel's
/// RawTarget reads it), HOPS is <see cref="RoutingHeaders.Hops"/> and FORWARDED-AT is
/// <see cref="RoutingHeaders.ForwardedAt"/> (unix seconds). The signature travels base64 in
/// <see cref="RoutingHeaders.Signature"/>. The body is not covered: the signature vouches for the
/// routing headers only, and a captured one is good for that method and target within
/// <see cref="Window"/> of its time.
/// </summary>
internal sealed class ForwardingSignature
{
    /// <summary>How far a signed time may be from the receiver's clock, either way (the nodes' clocks must agree this well).</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(60);

    private const string Domain = "qcowactors-forward-v1";
    private const int MacBytes = 32;
    private readonly byte[]? _key;

    public ForwardingSignature(IOptions<ClusterSettings> cluster) : this(cluster.Value.ForwardingKeyBytes())
    {
    }

    internal ForwardingSignature(byte[]? key) => _key = key;

    /// <summary>False without a key (a single node needs none: it never forwards); nothing is then trusted.</summary>
    public bool CanSign => _key is not null;

    /// <summary>The signature of a forwarded request, base64.</summary>
    public string Sign(string method, string target, int hops, long forwardedAt)
    {
        byte[] key = _key ?? throw new InvalidOperationException("Cluster:ForwardingKey is not set");
        Span<byte> mac = stackalloc byte[MacBytes];
        HMACSHA256.HashData(key, Message(method, target, hops, forwardedAt), mac);
        return Convert.ToBase64String(mac);
    }

    /// <summary>
    /// The hop count of a request a peer forwarded, when its three headers are well formed, its
    /// signature is right (compared in constant time) and its time within <see cref="Window"/> of
    /// <paramref name="now"/>; otherwise null and what was wrong (the request is then a client's).
    /// </summary>
    public int? Verify(string method, string target, StringValues hops, StringValues forwardedAt, StringValues signature, long now, out string? problem)
    {
        if (_key is null)
        {
            problem = "this node has no Cluster:ForwardingKey";
            return null;
        }
        if (!TryParseHops(hops, out int hopCount))
        {
            problem = $"{RoutingHeaders.Hops} is not one number from 0 to {ImageRouting.MaxHops}";
            return null;
        }
        if (forwardedAt.Count != 1 || !long.TryParse(forwardedAt[0], NumberStyles.None, CultureInfo.InvariantCulture, out long at))
        {
            problem = $"{RoutingHeaders.ForwardedAt} is not one number of unix seconds";
            return null;
        }
        Span<byte> given = stackalloc byte[MacBytes];
        if (signature.Count != 1 || !Convert.TryFromBase64String(signature[0] ?? "", given, out int length) || length != MacBytes)
        {
            problem = $"{RoutingHeaders.Signature} is not one base64 HMAC-SHA256";
            return null;
        }
        Span<byte> expected = stackalloc byte[MacBytes];
        HMACSHA256.HashData(_key, Message(method, target, hopCount, at), expected);
        if (!CryptographicOperations.FixedTimeEquals(given, expected))
        {
            problem = "the signature does not match (another key, or headers changed on the way)";
            return null;
        }
        if (Math.Abs(now - at) > (long)Window.TotalSeconds)
        {
            problem = $"it was signed {now - at} s ago, outside ±{Window.TotalSeconds:0} s (a replay, or the nodes' clocks disagree)";
            return null;
        }
        problem = null;
        return hopCount;
    }

    /// <summary>Exactly one value, digits only, from 0 to <see cref="ImageRouting.MaxHops"/>: signs, spaces and large numbers are refused.</summary>
    internal static bool TryParseHops(StringValues value, out int hops)
    {
        if (value.Count == 1 && value[0] is { Length: > 0 and <= 2 } text
            && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int parsed) && parsed <= ImageRouting.MaxHops)
        {
            hops = parsed;
            return true;
        }
        hops = 0;
        return false;
    }

    private static byte[] Message(string method, string target, int hops, long forwardedAt)
        => Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{Domain}\n{method}\n{target}\n{hops}\n{forwardedAt}"));
}
