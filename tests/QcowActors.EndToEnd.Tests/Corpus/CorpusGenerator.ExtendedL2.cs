namespace QcowActors.EndToEnd.Tests.Corpus;

internal static partial class CorpusGenerator
{
    private static void ExtendedL2Cases(List<CorpusCase> list)
    {
        const string c = "xl2";
        var s = SourceImages.ExtendedL2;
        void A(string name, Expect e, string damage, Action<ImageLayout, Patch> apply) => Add(list, c, name, s, e, damage, apply);
        static long Bitmap(ImageLayout l, long guest) => l.L2EntryAt(guest) + 8;
        const ulong AllAlloc = 0xffff_ffff;
        const ulong AllZero = 0xffff_ffff_0000_0000;

        A("alloc-and-zero-sc0", Expect.Any, "guest 0: subcluster 0 both allocated and zero", (l, p) => p.U64(Bitmap(l, 0), l.U64((int)Bitmap(l, 0)) | (1UL << 32)));
        A("alloc-and-zero-all", Expect.Any, "guest 0: every subcluster both allocated and zero", (l, p) => p.U64(Bitmap(l, 0), Max64));
        A("alloc-and-zero-sc31", Expect.Any, "guest 32 MiB (mid read): subcluster 0 allocated and zero, subcluster 31 too", (l, p) => p.U64(Bitmap(l, 32 << 20), l.U64((int)Bitmap(l, 32 << 20)) | (1UL << 32) | (1UL << 31) | (1UL << 63)));
        A("alloc-no-host", Expect.Any, "guest 2 MiB (no host cluster): every subcluster allocated", (l, p) => p.U64(Bitmap(l, 2 << 20), AllAlloc));
        A("alloc-no-host-unallocated", Expect.Any, "guest 64 KiB (entry 0): subcluster 0 allocated with descriptor 0", (l, p) => p.U64(Bitmap(l, 64 << 10), 1));
        A("zero-all-with-host", Expect.Serve, "guest 0: every subcluster zero, none allocated, host cluster kept", (l, p) => p.U64(Bitmap(l, 0), AllZero));
        A("zero-flag-bit0", Expect.Any, "guest 0: bit 0 (reserved with extended L2) set in the descriptor", (l, p) => p.U64(l.L2EntryAt(0), l.L2Entry(0) | ZeroFlag));
        A("compressed-with-bitmap", Expect.Any, "guest 0: compressed bit set and the bitmap non-zero",
            (l, p) => p.U64(l.L2EntryAt(0), Compressed | (ulong)l.HostOf(0)).U64(Bitmap(l, 0), 3));
        A("compressed-noise", Expect.Any, "guest 0: compressed descriptor into the data cluster (not deflate), bitmap 0",
            (l, p) => p.U64(l.L2EntryAt(0), Compressed | (ulong)l.HostOf(0)).U64(Bitmap(l, 0), 0));
        foreach (var (n, f) in Targets)
            A($"e0-{n}", Expect.Any, $"guest 0 descriptor (COPIED) → {n}, bitmap kept", (l, p) => p.U64(l.L2EntryAt(0), Copied | f(l)));
        A("bitmap-noise", Expect.Any, "every bitmap word of the active L2 table = random noise",
            (l, p) => { var r = new Random(1701); var b = new byte[8]; for (long at = l.L2Tables[0] + 8; at < l.L2Tables[0] + l.ClusterSize; at += 16) { r.NextBytes(b); p.Bytes(at, b); } });
        A("table-noise", Expect.Any, "the active L2 table = random noise", (l, p) => p.Noise(l.L2Tables[0], l.ClusterSize, 1702));
        A("table-half-cut", Expect.Any, "the file cut in the middle of an entry's bitmap word", (l, p) => p.Truncate(l.L2EntryAt(0) + 12));
        Add(list, c, "added-to-v3", SourceImages.V3, Expect.Any, "incompatible bit 4 set on a standard-L2 image (every entry read as 16 bytes)", (l, p) => p.U64(72, l.Incompatible | (1UL << 4)));
        A("bit-cleared", Expect.Any, "incompatible bit 4 cleared (16-byte entries read as 8-byte ones)", (l, p) => p.U64(72, l.Incompatible & ~(1UL << 4)));
        A("bit-cluster-4k", Expect.Refuse, "cluster_bits = 12 with extended L2 (below QEMU's 16 KiB minimum)", (_, p) => p.U32(20, 12));
    }
}
