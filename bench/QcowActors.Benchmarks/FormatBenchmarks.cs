using System.Buffers.Binary;
using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using QcowActors.Format;

namespace QcowActors.Benchmarks;

/// <summary>Parsing a header written by qemu-img.</summary>
[MemoryDiagnoser]
public class HeaderBenchmarks
{
    private byte[] _cluster = [];
    private long _fileLength;

    [GlobalSetup]
    public void Setup()
    {
        (_cluster, _fileLength) = QemuImage.FirstCluster();
    }

    [Benchmark]
    public QcowHeader Parse() => QcowHeader.Parse(_cluster, _fileLength);
}

/// <summary>Every entry of one 64 KiB refcount block read, or written, at refcount_order 0 (1 bit), 4 (16 bits), 6 (64 bits).</summary>
[MemoryDiagnoser]
public class RefcountBlockBenchmarks
{
    private const int BlockBytes = 64 * 1024;
    private readonly byte[] _block = new byte[BlockBytes];
    private long _entries;

    [Params(0, 4, 6)]
    public int Order { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _entries = RefcountBlock.EntriesIn(BlockBytes, Order);
        ulong max = RefcountBlock.MaxValue(Order);
        for (long i = 0; i < _entries; i++) RefcountBlock.Set(_block, i, Order, Math.Min((ulong)i % 3, max));
    }

    /// <summary>Reads the whole block (entries: 524288, 32768, 8192 for orders 0, 4, 6).</summary>
    [Benchmark]
    public ulong GetBlock()
    {
        ulong sum = 0;
        for (long i = 0; i < _entries; i++) sum += RefcountBlock.Get(_block, i, Order);
        return sum;
    }

    /// <summary>Writes the whole block.</summary>
    [Benchmark]
    public void SetBlock()
    {
        for (long i = 0; i < _entries; i++) RefcountBlock.Set(_block, i, Order, (ulong)i & 1);
    }
}

/// <summary>
/// A 64 KiB L2 table (8192 entries): decoding the big-endian bytes into entries as the L2 actor
/// loads a table, and classifying every entry as a mapping does. A mix of COPIED data, zero
/// (with and without a preallocated cluster) and unallocated entries.
/// </summary>
[MemoryDiagnoser]
public class L2TableBenchmarks
{
    private const int Entries = 8192;
    private readonly byte[] _table = new byte[Entries * 8];
    private readonly ulong[] _entries = new ulong[Entries];

    [GlobalSetup]
    public void Setup()
    {
        var rnd = new Random(3);
        long host = 0x50000;
        for (int i = 0; i < Entries; i++)
        {
            var e = rnd.Next(8) switch
            {
                < 5 => L2Entry.Data(host += 0x10000, copied: true),
                5 => L2Entry.Zero(host += 0x10000, copied: true),
                6 => L2Entry.Zero(0, copied: false),
                _ => L2Entry.Unallocated,
            };
            BinaryPrimitives.WriteUInt64BigEndian(_table.AsSpan(i * 8), e.ToRaw());
        }
    }

    /// <summary>As L2TableActor.LoadAsync: bytes to a new ulong[] (the table is allocated per load).</summary>
    [Benchmark]
    public ulong[] DecodeTable()
    {
        var entries = new ulong[Entries];
        for (int i = 0; i < entries.Length; i++)
            entries[i] = BinaryPrimitives.ReadUInt64BigEndian(_table.AsSpan(i * 8));
        return entries;
    }

    /// <summary>Decodes into a reused array and classifies every entry through <see cref="L2Entry"/>.</summary>
    [Benchmark]
    public long DecodeAndClassify()
    {
        long sum = 0;
        for (int i = 0; i < Entries; i++)
        {
            _entries[i] = BinaryPrimitives.ReadUInt64BigEndian(_table.AsSpan(i * 8));
            var e = L2Entry.From(_entries[i]);
            if (e.IsCompressed) sum--;
            else if (e.IsData) sum += e.HostOffset + (e.Copied ? 1 : 0);
            else if (e.IsZero) sum += 2;
            else if (e.IsUnallocated) sum += 3;
        }
        return sum;
    }
}

/// <summary>The first cluster of a fresh qemu-img image (the engine's own layout when qemu-img is missing).</summary>
internal static class QemuImage
{
    public static (byte[] Cluster, long FileLength) FirstCluster()
    {
        string dir = Path.Combine(Path.GetTempPath(), "qa-bench-hdr-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string path = Path.Combine(dir, "h.qcow2");
            if (TryQemuCreate(path))
            {
                var bytes = File.ReadAllBytes(path);
                return (bytes[..Math.Min(bytes.Length, 65536)], bytes.Length);
            }
            Console.Error.WriteLine("qemu-img not found: parsing the engine's own header instead");
            var plan = ImageCreator.Plan(new CreateOptions(2L << 30, 65536, 16));
            var cluster = new byte[65536];
            foreach (var (offset, w) in plan.Writes)
                if (offset < cluster.Length) w.Span[..(int)Math.Min(w.Length, cluster.Length - offset)].CopyTo(cluster.AsSpan((int)offset));
            return (cluster, plan.FileLength);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static bool TryQemuCreate(string path)
    {
        try
        {
            var psi = new ProcessStartInfo("qemu-img") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "create", "-q", "-f", "qcow2", path, "2G" }) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            p.StandardOutput.ReadToEnd();
            p.StandardError.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
