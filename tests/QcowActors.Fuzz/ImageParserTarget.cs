using System.Buffers.Binary;
using QcowActors.Actors.Image;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Fuzz;

/// <summary>
/// The one fuzz target, shared by afl (Program) and the CI replay (QcowActors.Format.Tests,
/// FuzzRegressionTests): the input is an image file. The Format layer parses it as the engine
/// would — header and validation, layout, snapshot table, one cluster's L2 entries with their
/// compressed descriptors and subcluster bitmaps, a compressed cluster inflated — then the
/// engine's open path (ImageOpener) opens it over an in-memory file with a small metadata budget.
/// The parser's documented refusals (QcowFormatException, ImageException) are normal outcomes;
/// anything else escapes and is a finding.
/// </summary>
public static class ImageParserTarget
{
    /// <summary>A small budget: open refuses images whose tables do not fit, as the server would with its own.</summary>
    public const long PerImageBudgetBytes = 4L << 20;
    /// <summary>Compressed clusters inflated per input: enough to reach the decoders, few enough to keep executions fast.</summary>
    private const int MaxInflations = 4;

    public static void Run(byte[] data)
    {
        try
        {
            ParseFormat(data);
        }
        catch (QcowFormatException)
        {
        }
        try
        {
            Open(data);
        }
        catch (QcowFormatException)
        {
        }
        catch (ImageException)
        {
        }
    }

    /// <summary>What src/Format offers a reader of the file, applied to the input.</summary>
    private static void ParseFormat(byte[] data)
    {
        var header = QcowHeader.Parse(data, data.Length);
        var layout = header.Layout;
        int cs = layout.ClusterSize;
        _ = layout.L1EntriesFor(header.Size);
        _ = layout.ClustersFor(data.Length);
        _ = layout.RefcountTableIndex(layout.ClustersFor(data.Length));

        if (header.NbSnapshots > 0 && header.SnapshotsOffset < data.Length)
        {
            var (snapshots, _) = SnapshotTable.Parse(data.AsSpan((int)header.SnapshotsOffset), header.NbSnapshots, (int)header.Version);
            foreach (var s in snapshots) _ = layout.L1EntriesFor(Math.Max(0, s.DiskSize));
        }

        // One L2 table: the one L1 entry 0 names when it lies inside the input, else the input's second cluster.
        long l2Offset = cs;
        if (header.L1Size > 0 && header.L1TableOffset + 8 <= data.Length)
        {
            var l1 = L1Entry.From(BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan((int)header.L1TableOffset)));
            if (!l1.IsUnallocated && l1.L2Offset < data.Length) l2Offset = l1.L2Offset;
        }
        if (l2Offset >= data.Length) return;
        var table = data.AsSpan((int)l2Offset, (int)Math.Min(cs, data.Length - l2Offset));
        int entryBytes = 8 * layout.L2EntryWords;
        int inflations = 0;
        byte[]? cluster = null;
        using var decompressor = new ClusterDecompressor(header.CompressionType);
        for (int i = 0; i + entryBytes <= table.Length; i += entryBytes)
        {
            var entry = L2Entry.From(BinaryPrimitives.ReadUInt64BigEndian(table[i..]));
            _ = entry.IsUnallocated;
            _ = entry.IsData;
            if (layout.ExtendedL2)
            {
                var bitmap = new SubclusterBitmap(BinaryPrimitives.ReadUInt64BigEndian(table[(i + 8)..]));
                _ = bitmap.Problem(entry.HostOffset);
                for (int sc = 0; sc < ClusterLayout.Subclusters; sc++) _ = bitmap.IsAllocated(sc);
            }
            if (!entry.IsCompressed) continue;
            var descriptor = CompressedDescriptor.From(entry.Raw, layout.ClusterBits);
            _ = descriptor.HostClusters(layout.ClusterBits);
            int span = descriptor.MaxCompressedLength;
            if (inflations < MaxInflations && descriptor.HostOffset < data.Length && span > 0)
            {
                inflations++;
                cluster ??= new byte[cs];
                int length = (int)Math.Min(span, data.Length - descriptor.HostOffset);
                _ = decompressor.TryDecompress(data.AsMemory((int)descriptor.HostOffset, length), cluster);
            }
        }
    }

    /// <summary>The engine's open: header, budget, tables, fences, snapshot table, repair of a dirty image, refcount scan.</summary>
    private static void Open(byte[] data)
    {
        var budget = new MetadataBudget(PerImageBudgetBytes, 2 * PerImageBudgetBytes);
        var fs = new MemoryFileSystem(data);
        var opened = ImageOpener.OpenAsync(MemoryFileSystem.ImagePath, MemoryFileSystem.MarkerPath, fs, budget,
            TimeSpan.Zero, CancellationToken.None).GetAwaiter().GetResult();
        opened.File.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }
}
