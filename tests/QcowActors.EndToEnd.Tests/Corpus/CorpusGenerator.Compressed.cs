namespace QcowActors.EndToEnd.Tests.Corpus;

internal static partial class CorpusGenerator
{
    /// <summary>Bits of a compressed descriptor's byte offset: 62 − (cluster_bits − 8).</summary>
    private static int OffsetBits(ImageLayout l) => 62 - (l.ClusterBits - 8);

    private static ulong Descriptor(ImageLayout l, ulong offset, ulong sectors)
        => Compressed | (sectors << OffsetBits(l)) | (offset & ((1UL << OffsetBits(l)) - 1));

    private static ulong SectorMask(ImageLayout l) => (1UL << (62 - OffsetBits(l))) - 1;

    private static void CompressedCases(List<CorpusCase> list)
    {
        const string c = "comp";
        var s = SourceImages.Compressed;
        void A(string name, Expect e, string damage, Action<ImageLayout, Patch> apply) => Add(list, c, name, s, e, damage, apply);
        static ulong Offset(ImageLayout l, long guest) => l.L2Entry(guest) & ((1UL << OffsetBits(l)) - 1);
        static ulong Sectors(ImageLayout l, long guest) => (l.L2Entry(guest) >> OffsetBits(l)) & SectorMask(l);

        A("sectors-max", Expect.Any, "descriptor of guest 0: additional sectors = all ones", (l, p) => p.U64(l.L2EntryAt(0), Descriptor(l, Offset(l, 0), SectorMask(l))));
        A("sectors-0", Expect.Any, "descriptor of guest 0: additional sectors = 0 (data cut short)", (l, p) => p.U64(l.L2EntryAt(0), Descriptor(l, Offset(l, 0), 0)));
        A("sectors-past-eof", Expect.Any, "descriptor of the last compressed cluster runs 100 sectors past EOF",
            (l, p) => { var (at, e) = l.L2Entries().Last(); p.U64(at, Descriptor(l, e & ((1UL << OffsetBits(l)) - 1), ((e >> OffsetBits(l)) & SectorMask(l)) + 100)); });
        A("offset-past-eof", Expect.Any, "descriptor of guest 0: offset one cluster past EOF", (l, p) => p.U64(l.L2EntryAt(0), Descriptor(l, PastEof(l), Sectors(l, 0))));
        A("offset-far", Expect.Any, "descriptor of guest 0: offset = the largest the field holds", (l, p) => p.U64(l.L2EntryAt(0), Descriptor(l, (1UL << OffsetBits(l)) - 1, Sectors(l, 0))));
        A("offset-header", Expect.Any, "descriptor of guest 0: offset 0 (inflates the header)", (l, p) => p.U64(l.L2EntryAt(0), Descriptor(l, 0, Sectors(l, 0))));
        A("offset-l1", Expect.Any, "descriptor of guest 0 → the L1 table", (l, p) => p.U64(l.L2EntryAt(0), Descriptor(l, (ulong)l.L1Offset, 3)));
        A("offset-l2-itself", Expect.Any, "descriptor of guest 0 → its own L2 table", (l, p) => p.U64(l.L2EntryAt(0), Descriptor(l, (ulong)l.L2Tables[0], 127)));
        A("offset-last-byte", Expect.Any, "descriptor of guest 0: offset = the file's last byte, 0 more sectors", (l, p) => p.U64(l.L2EntryAt(0), Descriptor(l, (ulong)l.FileLength - 1, 0)));
        A("offset-plus-1", Expect.Any, "descriptor of guest 0: offset + 1 (inflate starts mid-stream)", (l, p) => p.U64(l.L2EntryAt(0), l.L2Entry(0) + 1));
        A("copied", Expect.Any, "descriptor of guest 0 with COPIED (never valid on compressed clusters)", (l, p) => p.U64(l.L2EntryAt(0), l.L2Entry(0) | Copied));
        A("all-ones", Expect.Any, "descriptor of guest 0 = COPIED | compressed | every bit", (l, p) => p.U64(l.L2EntryAt(0), Max64));
        A("zero-bit", Expect.Any, "descriptor of guest 0 with bit 0 set (offset + 1 as well)", (l, p) => p.U64(l.L2EntryAt(0), l.L2Entry(0) | 1));
        A("data-noise", Expect.Any, "the compressed bytes of guest 0 = random noise",
            (l, p) => p.Noise((long)Offset(l, 0), 512, 1601));
        A("data-zero", Expect.Any, "the compressed bytes of guest 0 = zeros (a stored block of length 0)",
            (l, p) => p.Fill((long)Offset(l, 0), 512, 0));
        A("data-ff", Expect.Any, "the compressed bytes of guest 0 = 0xff",
            (l, p) => p.Fill((long)Offset(l, 0), 512, 0xff));
        A("data-stored-huge", Expect.Any, "the compressed bytes of guest 0 = a stored deflate block that would inflate 65535 bytes then more blocks",
            (l, p) => { var o = (long)Offset(l, 0); p.Bytes(o, new byte[] { 0x00, 0xff, 0xff, 0x00, 0x00 }).Fill(o + 5, 507, 0x41); });
        A("data-bomb", Expect.Any, "the compressed bytes of guest 0 = a deflate stream inflating far beyond one cluster",
            (l, p) => p.Bytes((long)Offset(l, 0), Bomb()));
        A("data-cut", Expect.Any, "the file cut inside the compressed bytes of the last compressed cluster",
            (l, p) => { var (_, e) = l.L2Entries().Last(); p.Truncate((long)(e & ((1UL << OffsetBits(l)) - 1)) + 10); });
        A("table-cut", Expect.Any, "the file cut 8 bytes into the L2 table", (l, p) => p.Truncate(l.L2Tables[0] + 8));
        A("all-past-eof", Expect.Any, "every compressed descriptor: offset past EOF",
            (l, p) => { foreach (var (at, e) in l.L2Entries()) p.U64(at, Descriptor(l, PastEof(l) + 77, (e >> OffsetBits(l)) & SectorMask(l))); });
        A("shared-with-l2", Expect.Any, "descriptor of guest 64 KiB → the L2 table bytes (metadata inflated as data)",
            (l, p) => p.U64(l.L2EntryAt(64 << 10), Descriptor(l, (ulong)l.L2Tables[0] + 8, 2)));
        A("refcount-0", Expect.Any, "the refcount of the host cluster holding guest 0's compressed data = 0",
            (l, p) => p.U16(l.RefcountBlocks[0] + 2 * ((long)Offset(l, 0) >> l.ClusterBits), 0));
    }

    /// <summary>Raw deflate of 1 MiB of zeros: inflates to 16 clusters.</summary>
    private static byte[] Bomb()
    {
        using var ms = new MemoryStream();
        using (var d = new System.IO.Compression.DeflateStream(ms, System.IO.Compression.CompressionLevel.SmallestSize, leaveOpen: true))
            d.Write(new byte[1 << 20]);
        return ms.ToArray();
    }
}
