using Microsoft.Extensions.Primitives;
using QcowActors.Api.Cluster;
using Xunit;

namespace QcowActors.Api.Tests.Cluster;

/// <summary>The HMAC that makes a forwarded request's routing headers trustworthy, and what it refuses.</summary>
public sealed class ForwardingSignatureTests
{
    private static readonly byte[] Key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
    private static readonly ForwardingSignature Signer = new(Key);
    private const long Now = 1_760_000_000;
    private const string Target = "/images/vm1/data?flush=n";

    private static int? Verify(ForwardingSignature signer, string method, string target, StringValues hops, StringValues at, StringValues signature, long now = Now)
        => signer.Verify(method, target, hops, at, signature, now, out _);

    [Fact]
    public void A_signed_request_verifies_with_its_hop_count()
    {
        string signature = Signer.Sign("PUT", Target, 2, Now);
        Assert.Equal(2, Verify(Signer, "PUT", Target, "2", Now.ToString(), signature));
        Assert.Equal(2, Verify(new ForwardingSignature(Key.ToArray()), "PUT", Target, "2", Now.ToString(), signature));
    }

    [Fact]
    public void The_signature_is_the_documented_hmac()
    {
        // README and ARCHITECTURE give this recipe: other tools (and the cluster tests) compute it alone.
        byte[] message = System.Text.Encoding.UTF8.GetBytes($"qcowactors-forward-v1\nGET\n{Target}\n1\n{Now}");
        string expected = Convert.ToBase64String(System.Security.Cryptography.HMACSHA256.HashData(Key, message));
        Assert.Equal(expected, Signer.Sign("GET", Target, 1, Now));
    }

    [Theory]
    [InlineData("PATCH", Target, "2", 0)]                       // another method
    [InlineData("PUT", "/images/vm2/data?flush=n", "2", 0)]     // another image
    [InlineData("PUT", "/images/vm1/data?flush=y", "2", 0)]     // another query
    [InlineData("PUT", Target, "1", 0)]                         // another hop count
    [InlineData("PUT", Target, "2", 1)]                         // another time
    public void Any_signed_part_changed_is_refused(string method, string target, string hops, long shift)
    {
        string signature = Signer.Sign("PUT", Target, 2, Now);
        Assert.Null(Verify(Signer, method, target, hops, (Now + shift).ToString(), signature, Now + shift));
    }

    [Fact]
    public void Another_key_or_no_key_is_refused()
    {
        string signature = Signer.Sign("GET", Target, 1, Now);
        byte[] other = Key.ToArray();
        other[0] ^= 1;
        Assert.Null(Verify(new ForwardingSignature(other), "GET", Target, "1", Now.ToString(), signature));
        var keyless = new ForwardingSignature((byte[]?)null);
        Assert.False(keyless.CanSign);
        Assert.Null(keyless.Verify("GET", Target, "1", Now.ToString(), signature, Now, out string? problem));
        Assert.Contains("no Cluster:ForwardingKey", problem);
    }

    [Theory]
    [InlineData(-60, true)]
    [InlineData(60, true)]
    [InlineData(-61, false)]
    [InlineData(61, false)]
    [InlineData(-86400, false)]
    public void A_signature_is_good_for_60_seconds_either_way(long age, bool accepted)
    {
        long signedAt = Now - age;
        string signature = Signer.Sign("GET", Target, 1, signedAt);
        int? hops = Signer.Verify("GET", Target, "1", signedAt.ToString(), signature, Now, out string? problem);
        Assert.Equal(accepted, hops == 1);
        if (!accepted) Assert.Contains("outside ±60 s", problem);
    }

    [Theory]
    [InlineData("0", true)]
    [InlineData("3", true)]
    [InlineData("4", false)]
    [InlineData("-5", false)]
    [InlineData("+1", false)]
    [InlineData(" 1", false)]
    [InlineData("1 ", false)]
    [InlineData("999999", false)]
    [InlineData("2147483648", false)]
    [InlineData("1e1", false)]
    [InlineData("", false)]
    [InlineData("٣", false)] // Arabic-Indic three
    public void Only_a_hop_count_from_0_to_MaxHops_is_read(string value, bool accepted)
    {
        Assert.Equal(accepted, ForwardingSignature.TryParseHops(value, out int hops));
        Assert.Equal(accepted ? int.Parse(value) : 0, hops);
    }

    [Fact]
    public void Repeated_or_malformed_headers_are_refused()
    {
        string signature = Signer.Sign("GET", Target, 1, Now);
        Assert.Null(Verify(Signer, "GET", Target, new StringValues(["1", "1"]), Now.ToString(), signature));
        Assert.Null(Verify(Signer, "GET", Target, "1", new StringValues([Now.ToString(), Now.ToString()]), signature));
        Assert.Null(Verify(Signer, "GET", Target, "1", "-" + Now, signature));
        Assert.Null(Verify(Signer, "GET", Target, "1", Now.ToString(), new StringValues([signature, signature])));
        Assert.Null(Verify(Signer, "GET", Target, "1", Now.ToString(), signature[..^4]));
        Assert.Null(Verify(Signer, "GET", Target, "1", Now.ToString(), "not base64!"));
        Assert.Null(Verify(Signer, "GET", Target, "1", Now.ToString(), Convert.ToBase64String(new byte[32])));
        Assert.Null(Verify(Signer, "GET", Target, "1", Now.ToString(), StringValues.Empty));
    }
}
