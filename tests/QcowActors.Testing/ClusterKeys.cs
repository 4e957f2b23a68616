using System.Security.Cryptography;

namespace QcowActors.Testing;

/// <summary>Settings every node of a test cluster needs.</summary>
public static class ClusterKeys
{
    /// <summary>A fresh Cluster:ForwardingKey (base64 of 32 random bytes): the nodes of one cluster share it.</summary>
    public static string NewForwardingKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>
    /// The environment a node of a loopback test cluster needs besides its ports and seeds: the
    /// cluster's forwarding key, and X-QcowActors-Node on (the tests find owners by it).
    /// </summary>
    public static Dictionary<string, string> NodeEnvironment(string forwardingKey) => new()
    {
        ["Cluster__ForwardingKey"] = forwardingKey,
        ["Cluster__ExposeNodeHeader"] = "true",
    };
}
