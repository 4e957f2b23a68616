using System.Buffers.Binary;
using System.Text;

namespace QcowActors.EndToEnd.Tests.Corpus;

/// <summary>What a corpus case should lead to, beyond the rules every case obeys (no 5xx, no hang, &lt; 1 s).</summary>
internal enum Expect
{
    /// <summary>The image is unusable: GET /images/{name} answers 4xx.</summary>
    Refuse,
    /// <summary>The damage is harmless or only leaks: GET /images/{name} answers 200.</summary>
    Serve,
    /// <summary>Either is defensible (QEMU itself opens some and fails on use).</summary>
    Any,
}

/// <summary>A corrupt image to build from the source image <see cref="Source"/>, and where it lies.</summary>
internal sealed record CorpusCase(string Name, string Category, string Source, string Damage, Expect Expect, Action<ImageLayout, Patch> Apply)
{
    /// <summary>Set when the server is known to break a rule on this case (see KnownFailures): the reason.</summary>
    public string? KnownFailure => KnownFailures.Reason(Name);

    public string ManifestLine => $"{Name}\t{Category}\t{Source}\t{Expect}\t{Damage}\t{KnownFailure ?? "-"}";

    public BuiltCase Build(IReadOnlyDictionary<string, byte[]> sources)
    {
        var layout = new ImageLayout(sources[Source]);
        var patch = new Patch(layout.Bytes, Name, sources);
        Apply(layout, patch);
        return new BuiltCase(this, patch.Result(), patch.ExtraFiles);
    }
}

/// <summary>A built case: the image's bytes and other files it needs next to it in the store (e.g. a damaged backing file).</summary>
internal sealed record BuiltCase(CorpusCase Case, byte[] Image, IReadOnlyList<(string FileName, byte[] Bytes)> ExtraFiles);

/// <summary>Big-endian edits on a copy of an image; the file may grow or shrink.</summary>
internal sealed class Patch(byte[] source, string caseName, IReadOnlyDictionary<string, byte[]> sources)
{
    private byte[] _bytes = (byte[])source.Clone();
    private readonly List<(string, byte[])> _extra = [];

    public string CaseName { get; } = caseName;

    /// <summary>Every source image, e.g. to damage a backing file next to the case.</summary>
    public IReadOnlyDictionary<string, byte[]> Sources { get; } = sources;
    public IReadOnlyList<(string FileName, byte[] Bytes)> ExtraFiles => _extra;
    public int Length => _bytes.Length;

    public Patch U8(long at, byte v) { Ensure(at + 1); _bytes[at] = v; return this; }
    public Patch U16(long at, ushort v) { Ensure(at + 2); BinaryPrimitives.WriteUInt16BigEndian(_bytes.AsSpan((int)at), v); return this; }
    public Patch U32(long at, uint v) { Ensure(at + 4); BinaryPrimitives.WriteUInt32BigEndian(_bytes.AsSpan((int)at), v); return this; }
    public Patch U64(long at, ulong v) { Ensure(at + 8); BinaryPrimitives.WriteUInt64BigEndian(_bytes.AsSpan((int)at), v); return this; }
    public Patch Bytes(long at, ReadOnlySpan<byte> v) { Ensure(at + v.Length); v.CopyTo(_bytes.AsSpan((int)at)); return this; }
    public Patch Text(long at, string v) => Bytes(at, Encoding.UTF8.GetBytes(v));
    public Patch Fill(long at, int length, byte v) { Ensure(at + length); _bytes.AsSpan((int)at, length).Fill(v); return this; }

    /// <summary>Deterministic pseudo-random bytes (fixed seed per case).</summary>
    public Patch Noise(long at, int length, int seed)
    {
        var r = new Random(seed);
        var b = new byte[length];
        r.NextBytes(b);
        return Bytes(at, b);
    }

    public Patch Truncate(long length) { Array.Resize(ref _bytes, (int)length); return this; }

    public Patch Extra(string fileName, byte[] bytes) { _extra.Add((fileName, bytes)); return this; }

    public ulong ReadU64(long at) => BinaryPrimitives.ReadUInt64BigEndian(_bytes.AsSpan((int)at));
    public uint ReadU32(long at) => BinaryPrimitives.ReadUInt32BigEndian(_bytes.AsSpan((int)at));

    public byte[] Result() => _bytes;

    private void Ensure(long end)
    {
        if (end > _bytes.Length)
            Array.Resize(ref _bytes, (int)end);
    }
}
