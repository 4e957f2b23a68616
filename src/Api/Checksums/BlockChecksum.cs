using System.Collections.Concurrent;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Digests;

namespace QcowActors.Api.Checksums;

/// <summary>
/// ovirt-imageio's disk checksum (its blkhash construction): the disk is cut into consecutive
/// blocks of block_size bytes (the last may be shorter), each block is hashed, and the checksum is
/// the hash of the block digests concatenated. BLAKE2 digests are 32 bytes; the other algorithms
/// keep their own size. A block that holds only zeros has the same digest as every zero block of
/// its length, so it is computed once and no zero block is read.
/// </summary>
internal static class BlockChecksum
{
    public const string DefaultAlgorithm = "blake2b";
    public const int DefaultBlockSize = 4 * 1024 * 1024;
    public const int BlockSizeUnit = 4096;
    public const int MaxBlockSize = 16 * 1024 * 1024;

    private static readonly Dictionary<string, Func<IDigest>> Algorithms = new(StringComparer.Ordinal)
    {
        ["blake2b"] = () => new Blake2bDigest(256),
        ["blake2s"] = () => new Blake2sDigest(256),
        ["md5"] = () => new MD5Digest(),
        ["sha1"] = () => new Sha1Digest(),
        ["sha224"] = () => new Sha224Digest(),
        ["sha256"] = () => new Sha256Digest(),
        ["sha384"] = () => new Sha384Digest(),
        ["sha512"] = () => new Sha512Digest(),
    };

    /// <summary>The names GET …/checksum/algorithms lists, sorted.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Algorithms.Keys.Order(StringComparer.Ordinal)];

    public static IDigest? Create(string algorithm) => Algorithms.TryGetValue(algorithm, out var make) ? make() : null;

    /// <summary>Null when imageio would take the size; else why not (block_size: a positive multiple of 4096, at most 16 MiB).</summary>
    public static string? CheckBlockSize(long blockSize)
        => blockSize <= 0 || blockSize % BlockSizeUnit != 0 || blockSize > MaxBlockSize
            ? $"block_size must be a multiple of {BlockSizeUnit} bytes from {BlockSizeUnit} to {MaxBlockSize} (16 MiB), not {blockSize}"
            : null;

    private static readonly ConcurrentDictionary<(string Algorithm, int Length), byte[]> ZeroDigests = new();
    private static readonly byte[] Zeros = new byte[1024 * 1024];

    /// <summary>The digest of <paramref name="length"/> zero bytes (cached: at most a few lengths per algorithm are ever asked).</summary>
    public static byte[] ZeroBlockDigest(string algorithm, int length) => ZeroDigests.GetOrAdd((algorithm, length), key =>
    {
        var digest = Create(key.Algorithm)!;
        for (int done = 0; done < key.Length; done += Zeros.Length)
            digest.BlockUpdate(Zeros, 0, Math.Min(Zeros.Length, key.Length - done));
        return Finish(digest);
    });

    public static byte[] Finish(IDigest digest)
    {
        var result = new byte[digest.GetDigestSize()];
        digest.DoFinal(result, 0);
        return result;
    }
}
