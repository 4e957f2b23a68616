namespace QcowActors.EndToEnd.Tests.Corpus;

internal static partial class CorpusGenerator
{
    private static readonly (string Name, ulong Value)[] Boundary64 =
    [
        ("0", 0), ("1", 1), ("512", 512), ("2p55", 1UL << 55), ("2p56", 1UL << 56), ("2p62", 1UL << 62), ("2p63", Bit63), ("max", Max64),
    ];

    private static readonly (string Name, uint Value)[] Boundary32 =
    [
        ("0", 0), ("1", 1), ("7fffffff", 0x7fffffff), ("80000000", 0x80000000), ("max", uint.MaxValue),
    ];

    private static void HeaderCases(List<CorpusCase> list)
    {
        const string c = "hdr";
        foreach (var source in new[] { SourceImages.V3, SourceImages.V2 })
        {
            var s = source;
            void A(string name, Expect e, string damage, Action<ImageLayout, Patch> apply) => Add(list, c, $"{s}-{name}", s, e, damage, apply);

            A("magic-0", Expect.Refuse, "magic = 0", (_, p) => p.U32(0, 0));
            A("magic-qfi-v1", Expect.Refuse, "magic = 'QFI\\xfa'", (_, p) => p.U32(0, 0x514649fa));
            foreach (var v in new uint[] { 0, 1, 4, 0xffffffff })
                A($"version-{v:x}", Expect.Refuse, $"version = {v}", (_, p) => p.U32(4, v));
            A("version-swapped", Expect.Any, s == SourceImages.V3 ? "version = 2 on a v3 image (72-byte header, extensions at 72)" : "version = 3 on a v2 image (feature fields read from the extension area)",
                (_, p) => p.U32(4, s == SourceImages.V3 ? 2u : 3u));
            foreach (var (n, v) in Boundary64)
                A($"backing_file_offset-{n}", Expect.Any, $"backing_file_offset = {v:#x} with backing_file_size 8", (_, p) => p.U64(8, v).U32(16, 8));
            A("backing_file_offset-past-eof", Expect.Refuse, "backing_file_offset past the end of the file, size 8", (l, p) => p.U64(8, PastEof(l) + 512).U32(16, 8));
            foreach (var (n, v) in Boundary32)
                A($"backing_file_size-{n}", Expect.Any, $"backing_file_size = {v:#x} with backing_file_offset 0 (a non-zero size without an offset)", (_, p) => p.U32(16, v));
            foreach (var v in new uint[] { 0, 1, 8, 22, 31, 32, 63, 64, 0xffffffff })
                A($"cluster_bits-{v:x}", Expect.Refuse, $"cluster_bits = {v}", (_, p) => p.U32(20, v));
            A("cluster_bits-9", Expect.Any, "cluster_bits = 9 (512-byte clusters; every table now lies elsewhere)", (_, p) => p.U32(20, 9));
            A("cluster_bits-21", Expect.Any, "cluster_bits = 21 (2 MiB clusters; tables unaligned to them)", (_, p) => p.U32(20, 21));
            foreach (var (n, v) in Boundary64)
                A($"size-{n}", n is "0" or "1" or "512" ? Expect.Any : Expect.Refuse, $"size = {v:#x} (l1_size unchanged)", (_, p) => p.U64(24, v));
            A("size-unaligned", Expect.Any, "size = 64 MiB + 1", (_, p) => p.U64(24, SourceImages.DiskSize + 1));
            foreach (var v in new uint[] { 1, 2, 3, 0xffffffff })
                A($"crypt_method-{v:x}", Expect.Refuse, $"crypt_method = {v}", (_, p) => p.U32(32, v));
            foreach (var (n, v) in Boundary32)
                A($"l1_size-{n}", n == "1" ? Expect.Serve : Expect.Refuse, $"l1_size = {v:#x}", (_, p) => p.U32(36, v));
            A("l1_size-over-32MiB", Expect.Refuse, "l1_size = 4 Mi + 1 entries (QEMU's 32 MiB L1 limit)", (_, p) => p.U32(36, (32u << 20) / 8 + 1));
            A("l1_size-past-eof", Expect.Any, "l1_size = 8192 (the table runs past the end of the file)", (_, p) => p.U32(36, 8192));
            foreach (var (n, v) in Boundary64)
                A($"l1_table_offset-{n}", Expect.Refuse, $"l1_table_offset = {v:#x}", (_, p) => p.U64(40, v));
            A("l1_table_offset-misaligned", Expect.Refuse, "l1_table_offset + 8", (l, p) => p.U64(40, (ulong)l.L1Offset + 8));
            A("l1_table_offset-past-eof", Expect.Refuse, "l1_table_offset one cluster past EOF", (l, p) => p.U64(40, PastEof(l)));
            A("l1_table_offset-refcount-table", Expect.Any, "l1_table_offset = refcount_table_offset", (l, p) => p.U64(40, (ulong)l.RefcountTableOffset));
            A("l1_table_offset-refcount-block", Expect.Any, "l1_table_offset = refcount block 0", (l, p) => p.U64(40, (ulong)l.RefcountBlocks[0]));
            foreach (var (n, v) in Boundary64)
                A($"refcount_table_offset-{n}", Expect.Refuse, $"refcount_table_offset = {v:#x}", (_, p) => p.U64(48, v));
            A("refcount_table_offset-misaligned", Expect.Refuse, "refcount_table_offset + 8", (l, p) => p.U64(48, (ulong)l.RefcountTableOffset + 8));
            A("refcount_table_offset-past-eof", Expect.Refuse, "refcount_table_offset one cluster past EOF", (l, p) => p.U64(48, PastEof(l)));
            A("refcount_table_offset-l1", Expect.Refuse, "refcount_table_offset = l1_table_offset", (l, p) => p.U64(48, (ulong)l.L1Offset));
            foreach (var (n, v) in Boundary32)
                A($"refcount_table_clusters-{n}", n == "1" ? Expect.Serve : Expect.Refuse, $"refcount_table_clusters = {v:#x}", (_, p) => p.U32(56, v));
            A("refcount_table_clusters-over-8MiB", Expect.Refuse, "refcount_table_clusters = 129 (QEMU's 8 MiB refcount table limit)", (_, p) => p.U32(56, 129));
            A("refcount_table_clusters-past-eof", Expect.Refuse, "refcount_table_clusters = 16 (runs past the end of the file)", (_, p) => p.U32(56, 16));
            foreach (var (n, v) in Boundary32)
                A($"nb_snapshots-{n}", n == "0" ? Expect.Serve : Expect.Refuse, $"nb_snapshots = {v:#x} (snapshots_offset 0)", (_, p) => p.U32(60, v));
            foreach (var (n, v) in Boundary64.Where(b => b.Value != 0))
                A($"snapshots_offset-{n}", Expect.Refuse, $"snapshots_offset = {v:#x} with nb_snapshots 1", (_, p) => p.U32(60, 1).U64(64, v));
        }

        var v3 = SourceImages.V3;
        void B(string name, Expect e, string damage, Action<ImageLayout, Patch> apply) => Add(list, c, $"v3-{name}", v3, e, damage, apply);
        for (var bit = 0; bit <= 5; bit++)
        {
            var b = bit;
            B($"incompatible-bit{b}", b is 0 or 1 ? Expect.Serve : b == 4 ? Expect.Any : Expect.Refuse, $"incompatible_features bit {b} set alone", (_, p) => p.U64(72, 1UL << b));
        }
        B("incompatible-bit63", Expect.Refuse, "incompatible_features bit 63", (_, p) => p.U64(72, Bit63));
        B("incompatible-all", Expect.Refuse, "incompatible_features = all ones", (_, p) => p.U64(72, Max64));
        B("compatible-all", Expect.Serve, "compatible_features = all ones (unknown compatible bits are ignored)", (_, p) => p.U64(80, Max64));
        B("autoclear-all", Expect.Serve, "autoclear_features = all ones (bitmaps bit without a bitmaps extension)", (_, p) => p.U64(88, Max64));
        B("autoclear-bit1", Expect.Serve, "autoclear_features bit 1 (raw external data) without an external data file", (_, p) => p.U64(88, 2));
        foreach (var v in new uint[] { 0, 3, 5, 6, 7, 64, 0xffffffff })
            B($"refcount_order-{v:x}", v is 7 or 64 or 0xffffffff ? Expect.Refuse : Expect.Any, $"refcount_order = {v} (the blocks still hold 16-bit counts)", (_, p) => p.U32(96, v));
        foreach (var v in new uint[] { 0, 71, 72, 100, 103, 105, 112 + 4, 4096, 65535, 65536, 65537, 0xffffffff })
            B($"header_length-{v:x}", v is 105 or 116 ? Expect.Refuse : Expect.Any, $"header_length = {v}", (_, p) => p.U32(100, v));
        B("header_length-104", Expect.Serve, "header_length = 104 (no compression_type byte; extensions move)", (_, p) => p.U32(100, 104));
        foreach (var v in new byte[] { 1, 2, 0xff })
            B($"compression_type-{v:x}", Expect.Refuse, $"compression_type = {v} without incompatible bit 3", (_, p) => p.U8(104, v));
        B("compression_type-bit3-zlib", Expect.Refuse, "incompatible bit 3 (compression type) with compression_type 0", (_, p) => p.U64(72, 1UL << 3));
        B("compression_type-bit3-unknown", Expect.Refuse, "incompatible bit 3 with compression_type 7", (_, p) => p.U64(72, 1UL << 3).U8(104, 7));
        B("padding-104-112", Expect.Serve, "bytes 105..111 (padding after compression_type) = 0xff", (_, p) => p.Fill(105, 7, 0xff));
    }
}
