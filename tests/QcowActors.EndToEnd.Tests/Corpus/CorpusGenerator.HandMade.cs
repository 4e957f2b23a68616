namespace QcowActors.EndToEnd.Tests.Corpus;

/// <summary>Cases in the spirit of QEMU's iotests 060 and 080 (overlapping and oversized metadata), and files that are barely qcow2.</summary>
internal static partial class CorpusGenerator
{
    private static void HandMadeCases(List<CorpusCase> list)
    {
        const string c = "iot";
        var s = SourceImages.V3;
        void A(string name, Expect e, string damage, Action<ImageLayout, Patch> apply) => Add(list, c, name, s, e, damage, apply);

        // 080: sizes over QEMU's limits, tables that do not fit.
        A("080-huge-l1-size", Expect.Refuse, "l1_size = 0x10000000 (QEMU: 'Active L1 table too large')", (_, p) => p.U32(36, 0x10000000));
        A("080-l1-too-small", Expect.Refuse, "size = 2^50 with l1_size 1 (QEMU: 'L1 table is too small')", (_, p) => p.U64(24, 1UL << 50));
        A("080-l1-overflow", Expect.Refuse, "size = 2^63 − 512 with l1_size 0xffffffff", (_, p) => p.U64(24, Bit63 - 512).U32(36, 0xffffffff));
        A("080-refcount-table-huge", Expect.Refuse, "refcount_table_clusters = 0x800000", (_, p) => p.U32(56, 0x800000));
        A("080-refcount-table-offset-unaligned", Expect.Refuse, "refcount_table_offset = 0x12345", (_, p) => p.U64(48, 0x12345));
        A("080-l1-offset-unaligned", Expect.Refuse, "l1_table_offset = 0x12345", (_, p) => p.U64(40, 0x12345));
        A("080-nb-snapshots-65537", Expect.Refuse, "nb_snapshots = 65537 (QEMU's limit is 65536)", (_, p) => p.U32(60, 65537).U64(64, 0x30000));
        A("080-snapshot-table-huge", Expect.Refuse, "nb_snapshots = 65536 at snapshots_offset 0x1000000 (past EOF)", (_, p) => p.U32(60, 65536).U64(64, 0x1000000));
        A("080-header-length-cluster", Expect.Refuse, "header_length = cluster size + 8", (l, p) => p.U32(100, (uint)l.ClusterSize + 8));
        A("080-extension-past-cluster", Expect.Refuse, "an extension whose data ends past the first cluster", (l, p) => p.U32(l.HeaderLength + 4, (uint)l.ClusterSize));
        A("080-l1-size-mismatch-size", Expect.Refuse, "size = 1 TiB with l1_size 1", (_, p) => p.U64(24, 1UL << 40));
        // 060: metadata that overlaps.
        A("060-l1-over-header", Expect.Refuse, "l1_table_offset = 0 (the L1 table overlaps the header)", (_, p) => p.U64(40, 0));
        A("060-refcount-table-over-header", Expect.Refuse, "refcount_table_offset = 0 (overlaps the header)", (_, p) => p.U64(48, 0));
        A("060-l2-on-l1", Expect.Any, "the L2 entry of guest 0 (COPIED) → the L1 table", (l, p) => p.U64(l.L2EntryAt(0), Copied | (ulong)l.L1Offset));
        A("060-l2-on-l1-no-copied", Expect.Any, "the L2 entry of guest 0 (no COPIED) → the L1 table", (l, p) => p.U64(l.L2EntryAt(0), (ulong)l.L1Offset));
        A("060-l1-on-refcount-block", Expect.Any, "L1 entry 0 → refcount block 0 (counts read as L2 entries)", (l, p) => p.U64(l.L1Offset, Copied | (ulong)l.RefcountBlocks[0]));
        A("060-refcount-table-beyond-eof", Expect.Refuse, "refcount_table_offset = 1 TiB (beyond EOF)", (_, p) => p.U64(48, Far));
        A("060-refcount-table-beyond-eof-dirty", Expect.Refuse, "refcount table beyond EOF and the dirty bit set", (l, p) => p.U64(48, Far).U64(72, l.Incompatible | 1));
        A("060-refcount-block-on-l2", Expect.Any, "refcount table entry 0 → the L2 table", (l, p) => p.U64(l.RefcountTableOffset, (ulong)l.L2Tables[0]));
        A("060-l1-equals-refcount-table", Expect.Any, "l1_table_offset = refcount_table_offset", (l, p) => p.U64(40, (ulong)l.RefcountTableOffset));
        A("060-corrupt-bit", Expect.Serve, "incompatible bit 1 (corrupt) set: reads work, writes refused", (l, p) => p.U64(72, l.Incompatible | 2));
        A("060-corrupt-and-dirty", Expect.Any, "corrupt and dirty bits set", (l, p) => p.U64(72, l.Incompatible | 3));
        A("060-l2-on-data-of-other", Expect.Any, "guest 0's and guest 1 MiB's L2 entries share a host cluster; refcount 1", (l, p) => p.U64(l.L2EntryAt(1 << 20), l.L2Entry(0)));
        A("060-l2-on-refcount-table-zero-flag", Expect.Any, "the preallocated zero cluster → the refcount table", (l, p) => p.U64(l.L2EntryAt(3 << 20), ZeroFlag | Copied | (ulong)l.RefcountTableOffset));
        // Files that are barely qcow2.
        A("file-empty", Expect.Refuse, "an empty file", (_, p) => p.Truncate(0));
        A("file-magic-only", Expect.Refuse, "the file cut to 4 bytes (magic only)", (_, p) => p.Truncate(4));
        A("file-71", Expect.Refuse, "the file cut to 71 bytes (one short of a v2 header)", (_, p) => p.Truncate(71));
        A("file-103", Expect.Refuse, "the file cut to 103 bytes (inside the v3 header)", (_, p) => p.Truncate(103));
        A("file-header-only", Expect.Refuse, "the file cut to its first cluster (no tables)", (l, p) => p.Truncate(l.ClusterSize));
        A("file-before-l1", Expect.Refuse, "the file cut just before the L1 table", (l, p) => p.Truncate(l.L1Offset));
        A("file-zeros", Expect.Refuse, "the whole file zeroed", (l, p) => p.Fill(0, (int)l.FileLength, 0));
        A("file-noise", Expect.Refuse, "1 MiB of random bytes", (_, p) => p.Truncate(0).Noise(0, 1 << 20, 2101));
        A("file-noise-with-magic", Expect.Refuse, "the header after the magic and version = random noise", (_, p) => p.Noise(8, 96, 2102));
        A("file-header-noise-seeds", Expect.Refuse, "every header field after the version = 0xff", (_, p) => p.Fill(8, 96, 0xff));
        A("file-grown", Expect.Serve, "the file extended by 4 MiB of zeros past its last cluster (unreferenced, not corruption)", (l, p) => p.U8(l.EndCluster + (4 << 20) - 1, 0));
        // Randomized header damage with fixed seeds: a few bytes of the first 112 flipped.
        for (var seed = 0; seed < 24; seed++)
        {
            var sd = seed;
            A($"flip-header-{sd:d2}", Expect.Any, $"3 random bytes of the header flipped (seed {3000 + sd})", (_, p) =>
            {
                var r = new Random(3000 + sd);
                for (var k = 0; k < 3; k++)
                {
                    var at = r.Next(4, 112);
                    p.U8(at, (byte)(p.Result()[at] ^ (1 << r.Next(8))));
                }
            });
        }
        for (var seed = 0; seed < 12; seed++)
        {
            var sd = seed;
            A($"flip-tables-{sd:d2}", Expect.Any, $"16 random bytes of the L1, L2 and refcount tables flipped (seed {4000 + sd})", (l, p) =>
            {
                var r = new Random(4000 + sd);
                long[] regions = [l.L1Offset, l.L2Tables[0], l.RefcountTableOffset, l.RefcountBlocks[0]];
                long[] sizes = [l.L1Size * 8, 2048, 64, 2048];
                for (var k = 0; k < 16; k++)
                {
                    var i = r.Next(regions.Length);
                    var at = regions[i] + r.Next((int)sizes[i]);
                    p.U8(at, (byte)(p.Result()[at] ^ (1 << r.Next(8))));
                }
            });
        }
    }
}
