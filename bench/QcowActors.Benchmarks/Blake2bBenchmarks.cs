using BenchmarkDotNet.Attributes;
using Org.BouncyCastle.Crypto.Digests;

namespace QcowActors.Benchmarks;

/// <summary>
/// The in-memory speed of the BLAKE2b the checksum endpoint uses (BouncyCastle, 32-byte digest),
/// over imageio's default 4 MiB block: the ceiling bench/run.sh holds GET …/checksum against.
/// </summary>
[MemoryDiagnoser]
public class Blake2bBenchmarks
{
    public const int BlockSize = 4 * 1024 * 1024;
    private readonly byte[] _block = new byte[BlockSize];
    private readonly byte[] _digest = new byte[32];

    [GlobalSetup]
    public void Setup() => new Random(42).NextBytes(_block);

    /// <summary>One 4 MiB block hashed; bytes per second = 4 MiB / mean.</summary>
    [Benchmark]
    public byte[] Blake2b4MiB()
    {
        var digest = new Blake2bDigest(256);
        digest.BlockUpdate(_block, 0, _block.Length);
        digest.DoFinal(_digest, 0);
        return _digest;
    }
}
