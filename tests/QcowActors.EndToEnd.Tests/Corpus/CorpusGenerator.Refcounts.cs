namespace QcowActors.EndToEnd.Tests.Corpus;

internal static partial class CorpusGenerator
{
    private static void RefcountCases(List<CorpusCase> list)
    {
        const string c = "rc";
        foreach (var source in new[] { SourceImages.V3, SourceImages.V2 })
        {
            var s = source;
            void A(string name, Expect e, string damage, Action<ImageLayout, Patch> apply) => Add(list, c, $"{s}-{name}", s, e, damage, apply);
            // Refcount table entries.
            foreach (var (n, v) in new (string, ulong)[] { ("2p56", 1UL << 56), ("2p63", Bit63), ("max", Max64), ("1", 1), ("512", 512), ("far", Far) })
                A($"t0-{n}", Expect.Any, $"refcount table entry 0 = {v:#x}", (_, p) => p.U64(Rt(p), v));
            A("t0-bit63-kept-offset", Expect.Any, "refcount table entry 0 with bit 63 added to its offset", (l, p) => p.U64(l.RefcountTableOffset, l.RefcountTable[0] | Bit63));
            A("t0-bit56-kept-offset", Expect.Any, "refcount table entry 0 with bit 56 added to its offset", (l, p) => p.U64(l.RefcountTableOffset, l.RefcountTable[0] | (1UL << 56)));
            A("t0-misaligned-8", Expect.Any, "refcount table entry 0 + 8", (l, p) => p.U64(l.RefcountTableOffset, l.RefcountTable[0] + 8));
            A("t0-misaligned-512", Expect.Any, "refcount table entry 0 + 512", (l, p) => p.U64(l.RefcountTableOffset, l.RefcountTable[0] + 512));
            A("t0-past-eof", Expect.Any, "refcount table entry 0 → one cluster past EOF", (l, p) => p.U64(l.RefcountTableOffset, PastEof(l)));
            A("t0-zero", Expect.Any, "refcount table entry 0 = 0 (every count reads 0)", (l, p) => p.U64(l.RefcountTableOffset, 0));
            A("t0-l1", Expect.Any, "refcount table entry 0 → the L1 table", (l, p) => p.U64(l.RefcountTableOffset, (ulong)l.L1Offset));
            A("t0-itself", Expect.Any, "refcount table entry 0 → the refcount table", (l, p) => p.U64(l.RefcountTableOffset, (ulong)l.RefcountTableOffset));
            A("t0-l2", Expect.Any, "refcount table entry 0 → the L2 table", (l, p) => p.U64(l.RefcountTableOffset, (ulong)l.L2Tables[0]));
            A("t0-data", Expect.Any, "refcount table entry 0 → a data cluster", (l, p) => p.U64(l.RefcountTableOffset, (ulong)l.HostOf(0)));
            A("t1-duplicate", Expect.Any, "refcount table entry 1 = entry 0 (one block for two ranges)", (l, p) => p.U64(l.RefcountTableOffset + 8, l.RefcountTable[0]));
            A("t1-past-eof", Expect.Any, "refcount table entry 1 → past EOF", (l, p) => p.U64(l.RefcountTableOffset + 8, PastEof(l)));
            A("t-last-max", Expect.Any, "the last refcount table entry = 2^64-1", (l, p) => p.U64(l.RefcountTableOffset + l.RefcountTable.Count * 8 - 8, Max64));
            A("t-noise", Expect.Any, "the refcount table = random noise", (l, p) => p.Noise(l.RefcountTableOffset, l.ClusterSize, 1801));
            // Refcount blocks (16-bit counts).
            A("b-header-0", Expect.Any, "refcount of the header = 0", (l, p) => p.U16(l.RefcountBlocks[0], 0));
            A("b-l1-0", Expect.Any, "refcount of the L1 table = 0", (l, p) => p.U16(l.RefcountBlocks[0] + 2 * (l.L1Offset >> l.ClusterBits), 0));
            A("b-table-0", Expect.Any, "refcount of the refcount table = 0", (l, p) => p.U16(l.RefcountBlocks[0] + 2 * (l.RefcountTableOffset >> l.ClusterBits), 0));
            A("b-block-0", Expect.Any, "refcount of the refcount block itself = 0", (l, p) => p.U16(l.RefcountBlocks[0] + 2 * (l.RefcountBlocks[0] >> l.ClusterBits), 0));
            A("b-l2-0", Expect.Any, "refcount of the L2 table = 0", (l, p) => p.U16(l.RefcountBlocks[0] + 2 * (l.L2Tables[0] >> l.ClusterBits), 0));
            A("b-data-0", Expect.Any, "refcount of guest 0's data cluster = 0", (l, p) => p.U16(l.RefcountBlocks[0] + 2 * (l.HostOf(0) >> l.ClusterBits), 0));
            A("b-data-2", Expect.Any, "refcount of guest 0's data cluster = 2 (COPIED now wrong)", (l, p) => p.U16(l.RefcountBlocks[0] + 2 * (l.HostOf(0) >> l.ClusterBits), 2));
            A("b-data-max", Expect.Any, "refcount of guest 0's data cluster = 0xffff (cannot be incremented)", (l, p) => p.U16(l.RefcountBlocks[0] + 2 * (l.HostOf(0) >> l.ClusterBits), 0xffff));
            A("b-all-0", Expect.Any, "refcount block 0 = zeros", (l, p) => p.Fill(l.RefcountBlocks[0], l.ClusterSize, 0));
            A("b-all-max", Expect.Any, "refcount block 0 = 0xffff everywhere", (l, p) => p.Fill(l.RefcountBlocks[0], l.ClusterSize, 0xff));
            A("b-noise", Expect.Any, "refcount block 0 = random noise", (l, p) => p.Noise(l.RefcountBlocks[0], l.ClusterSize, 1802));
            A("b-cut", Expect.Any, "the file cut in the middle of refcount block 0", (l, p) => p.Truncate(l.RefcountBlocks[0] + 100));
            A("b-past-eof-counts", Expect.Any, "counts of 1 for 100 clusters past EOF (a leak)", (l, p) =>
            {
                for (var k = l.EndCluster >> l.ClusterBits; k < (l.EndCluster >> l.ClusterBits) + 100; k++)
                    p.U16(l.RefcountBlocks[0] + 2 * k, 1);
            });
        }
        Add(list, c, "v3-dirty-b-all-0", SourceImages.V3, Expect.Any, "dirty bit set and refcount block 0 zeroed (open must rebuild the counts)",
            (l, p) => p.U64(72, l.Incompatible | 1).Fill(l.RefcountBlocks[0], l.ClusterSize, 0));
        Add(list, c, "v3-dirty-t0-past-eof", SourceImages.V3, Expect.Any, "dirty bit set and refcount table entry 0 past EOF",
            (l, p) => p.U64(72, l.Incompatible | 1).U64(l.RefcountTableOffset, PastEof(l)));
        Add(list, c, "v3-dirty-t0-l1", SourceImages.V3, Expect.Any, "dirty bit set and refcount table entry 0 → the L1 table",
            (l, p) => p.U64(72, l.Incompatible | 1).U64(l.RefcountTableOffset, (ulong)l.L1Offset));
        Add(list, c, "v3-dirty-l2-on-header", SourceImages.V3, Expect.Any, "dirty bit set and L2 entry 0 (COPIED) → the header",
            (l, p) => p.U64(72, l.Incompatible | 1).U64(l.L2EntryAt(0), Copied | 0));
        Add(list, c, "v3-dirty-l1-past-eof", SourceImages.V3, Expect.Any, "dirty bit set and L1 entry 0 → 1 TiB",
            (l, p) => p.U64(72, l.Incompatible | 1).U64(l.L1Offset, Copied | Far));
        Add(list, c, "v3-order0-blocks", SourceImages.V3, Expect.Any, "refcount_order 0 (1-bit counts) over 16-bit blocks",
            (_, p) => p.U32(96, 0));
        Add(list, c, "v3-order6-blocks", SourceImages.V3, Expect.Any, "refcount_order 6 (64-bit counts) over 16-bit blocks",
            (_, p) => p.U32(96, 6));
    }

    private static long Rt(Patch p) => (long)p.ReadU64(48);
}
