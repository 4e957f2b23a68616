namespace QcowActors.EndToEnd.Tests.Corpus;

internal static partial class CorpusGenerator
{
    /// <summary>Host offsets worth pointing a table entry at: metadata, misaligned, past EOF, beyond 2^56.</summary>
    private static readonly (string Name, Func<ImageLayout, ulong> Offset)[] Targets =
    [
        ("header", _ => 0),
        ("header-512", _ => 512),
        ("l1", l => (ulong)l.L1Offset),
        ("refcount-table", l => (ulong)l.RefcountTableOffset),
        ("refcount-block", l => (ulong)l.RefcountBlocks[0]),
        ("l2-itself", l => (ulong)l.L2Tables[0]),
        ("misaligned-512", l => (ulong)l.L2Tables[0] + 512),
        ("past-eof", l => PastEof(l)),
        ("far-past-eof", _ => Far),
        ("max-offset", _ => OffsetMask),
    ];

    private const ulong OffsetMask = ImageLayout.OffsetMask;

    private static void L1Cases(List<CorpusCase> list)
    {
        const string c = "l1";
        foreach (var source in new[] { SourceImages.V3, SourceImages.V2 })
        {
            var s = source;
            void A(string name, Expect e, string damage, Action<ImageLayout, Patch> apply) => Add(list, c, $"{s}-{name}", s, e, damage, apply);
            foreach (var (n, f) in Targets)
                A($"e0-{n}", Expect.Any, $"L1 entry 0 (COPIED) → {n}", (l, p) => p.U64(l.L1Offset, Copied | f(l)));
            A("e0-misaligned-8", Expect.Any, "L1 entry 0 → its L2 table + 8", (l, p) => p.U64(l.L1Offset, l.L1[0] + 8));
            A("e0-reserved-low", Expect.Any, "L1 entry 0 with reserved bits 1..8 set", (l, p) => p.U64(l.L1Offset, l.L1[0] | 0x1fe));
            A("e0-reserved-high", Expect.Any, "L1 entry 0 with reserved bits 56..62 set", (l, p) => p.U64(l.L1Offset, l.L1[0] | 0x7f00_0000_0000_0000));
            A("e0-no-copied", Expect.Serve, "L1 entry 0 without COPIED (refcount 1)", (l, p) => p.U64(l.L1Offset, l.L1[0] & ~Copied));
            A("e0-all-ones", Expect.Any, "L1 entry 0 = 0xffffffffffffffff", (l, p) => p.U64(l.L1Offset, Max64));
            A("e0-zeroed", Expect.Serve, "L1 entry 0 = 0 (its L2 table leaks)", (l, p) => p.U64(l.L1Offset, 0));
            A("e0-data-cluster", Expect.Any, "L1 entry 0 → the data cluster of guest 0 (data read as an L2 table)", (l, p) => p.U64(l.L1Offset, Copied | (ulong)l.HostOf(0)));
            A("table-noise", Expect.Any, "the whole L1 table = random noise", (l, p) => p.Noise(l.L1Offset, l.L1Size * 8, 1401));
            A("cut-in-table", Expect.Refuse, "the file cut in the middle of the L1 table", (l, p) => p.Truncate(l.L1Offset + 4));
        }
    }

    private static void L2Cases(List<CorpusCase> list)
    {
        const string c = "l2";
        foreach (var source in new[] { SourceImages.V3, SourceImages.V2 })
        {
            var s = source;
            void A(string name, Expect e, string damage, Action<ImageLayout, Patch> apply) => Add(list, c, $"{s}-{name}", s, e, damage, apply);
            foreach (var (n, f) in Targets)
                A($"e0-{n}", Expect.Any, $"L2 entry of guest cluster 0 (COPIED) → {n}", (l, p) => p.U64(l.L2EntryAt(0), Copied | f(l)));
            A("e0-reserved-low", Expect.Any, "L2 entry 0 with reserved bits 1..8 set", (l, p) => p.U64(l.L2EntryAt(0), l.L2Entry(0) | 0x1fe));
            A("e0-reserved-high", Expect.Any, "L2 entry 0 with reserved bits 56..61 set", (l, p) => p.U64(l.L2EntryAt(0), l.L2Entry(0) | 0x3f00_0000_0000_0000));
            A("e0-no-copied", Expect.Serve, "L2 entry 0 without COPIED (refcount 1: writes copy)", (l, p) => p.U64(l.L2EntryAt(0), l.L2Entry(0) & ~Copied));
            A("e0-all-ones", Expect.Any, "L2 entry 0 = 0xffffffffffffffff", (l, p) => p.U64(l.L2EntryAt(0), Max64));
            A("e0-copied-offset-0", Expect.Any, "L2 entry 0 = COPIED with offset 0", (l, p) => p.U64(l.L2EntryAt(0), Copied));
            A("e0-duplicate-of-1m", Expect.Any, "L2 entries of guest 0 and 1 MiB → the same host cluster (both COPIED)", (l, p) => p.U64(l.L2EntryAt(0), l.L2Entry(1 << 20)));
            A("e0-compressed-flag", Expect.Any, "L2 entry 0 with the compressed bit added (a normal entry read as a descriptor)", (l, p) => p.U64(l.L2EntryAt(0), l.L2Entry(0) | Compressed));
            A("e0-compressed-copied", Expect.Any, "L2 entry 0 = COPIED | compressed | its old offset", (l, p) => p.U64(l.L2EntryAt(0), Copied | Compressed | (l.L2Entry(0) & OffsetMask)));
            A("e0-zero-flag", Expect.Any, s == SourceImages.V2 ? "L2 entry 0 with bit 0 (reserved on v2) set" : "L2 entry 0 with the zero flag (keeps its host cluster)", (l, p) => p.U64(l.L2EntryAt(0), l.L2Entry(0) | ZeroFlag));
            A("e0-zero-flag-on-l1", Expect.Any, "L2 entry 0 = zero flag | COPIED → the L1 table", (l, p) => p.U64(l.L2EntryAt(0), ZeroFlag | Copied | (ulong)l.L1Offset));
            A("e0-zero-flag-past-eof", Expect.Any, "L2 entry 0 = zero flag → past EOF", (l, p) => p.U64(l.L2EntryAt(0), ZeroFlag | PastEof(l)));
            A("e0-zero-flag-misaligned", Expect.Any, "L2 entry 0 = zero flag → misaligned host offset", (l, p) => p.U64(l.L2EntryAt(0), ZeroFlag | Copied | ((ulong)l.HostOf(0) + 512)));
            A("mid-past-eof", Expect.Any, "L2 entry of guest 32 MiB (the mid-disk read) → past EOF", (l, p) => p.U64(l.L2EntryAt(32 << 20), Copied | PastEof(l)));
            A("mid-far-past-eof", Expect.Any, "L2 entry of guest 32 MiB → 1 TiB", (l, p) => p.U64(l.L2EntryAt(32 << 20), Copied | Far));
            A("table-noise", Expect.Any, "the active L2 table = random noise", (l, p) => p.Noise(l.L2Tables[0], l.ClusterSize, 1501));
            A("table-all-ones", Expect.Any, "the active L2 table = 0xff bytes", (l, p) => p.Fill(l.L2Tables[0], l.ClusterSize, 0xff));
            A("table-cut", Expect.Any, "the file cut in the middle of the L2 table", (l, p) => p.Truncate(l.L2Tables[0] + 100));
            A("data-cut", Expect.Any, "the file cut in the middle of the last data cluster", (l, p) => p.Truncate(l.FileLength - l.ClusterSize / 2));
        }
        void V3(string name, Expect e, string damage, Action<ImageLayout, Patch> apply) => Add(list, c, $"v3-{name}", SourceImages.V3, e, damage, apply);
        V3("zero-keep-on-header", Expect.Any, "the preallocated zero cluster (3 MiB) → the header", (l, p) => p.U64(l.L2EntryAt(3 << 20), ZeroFlag | Copied));
        V3("zero-nohost-copied", Expect.Any, "the unallocated zero cluster (2 MiB) gets COPIED with offset 0", (l, p) => p.U64(l.L2EntryAt(2 << 20), ZeroFlag | Copied));
    }
}
