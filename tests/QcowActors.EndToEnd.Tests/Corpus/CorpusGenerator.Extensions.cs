namespace QcowActors.EndToEnd.Tests.Corpus;

internal static partial class CorpusGenerator
{
    private static void ExtensionCases(List<CorpusCase> list)
    {
        const string c = "ext";
        var v3 = SourceImages.V3;
        void A(string name, Expect e, string damage, Action<ImageLayout, Patch> apply) => Add(list, c, name, v3, e, damage, apply);
        static ImageLayout.Extension Fnt(ImageLayout l) => l.FindExtension(ImageLayout.FeatureNameTable) ?? throw new InvalidOperationException("no feature name table");

        foreach (var v in new uint[] { 0, 1, 7, 47, 49, 0x10000, 0xfff8, 0x7fffffff, 0xffffffff })
            A($"fnt-length-{v:x}", v is 0 or 1 or 7 or 47 or 49 ? Expect.Any : Expect.Refuse, $"feature name table length = {v:#x}", (l, p) => p.U32(Fnt(l).At + 4, v));
        A("fnt-length-to-cluster-end", Expect.Any, "feature name table length reaches exactly the end of the first cluster", (l, p) => p.U32(Fnt(l).At + 4, (uint)(l.ClusterSize - Fnt(l).At - 8)));
        A("fnt-length-past-cluster", Expect.Refuse, "feature name table length runs 8 bytes past the first cluster", (l, p) => p.U32(Fnt(l).At + 4, (uint)(l.ClusterSize - Fnt(l).At)));
        A("fnt-type-0", Expect.Any, "feature name table type = 0 (the list ends before it)", (l, p) => p.U32(Fnt(l).At, 0));
        A("fnt-unknown-type", Expect.Serve, "feature name table type = 0x12345678 (an unknown extension to keep)", (l, p) => p.U32(Fnt(l).At, 0x12345678));
        A("fnt-entry-type-3", Expect.Any, "feature name table entry 0 type = 3 (no such feature type)", (l, p) => p.U8(Fnt(l).At + 8, 3));
        A("fnt-entry-type-ff", Expect.Any, "feature name table entry 0 type = 0xff, bit 0xff", (l, p) => p.U8(Fnt(l).At + 8, 0xff).U8(Fnt(l).At + 9, 0xff));
        A("fnt-name-unterminated", Expect.Any, "feature name table entry 0 name = 46 'A' (no NUL)", (l, p) => p.Fill(Fnt(l).At + 10, 46, (byte)'A'));
        A("fnt-name-invalid-utf8", Expect.Any, "feature name table entry 0 name = invalid UTF-8 and control bytes", (l, p) => p.Bytes(Fnt(l).At + 10, new byte[] { 0xff, 0xfe, 0xc0, 0x80, 0x1b, 0x5b, 0x07, 0x0a, 0x22, 0x5c, 0 }));
        A("fnt-noise", Expect.Any, "feature name table bytes = random noise (length kept)", (l, p) => p.Noise(Fnt(l).At + 8, Fnt(l).Length, 1301));
        A("fnt-names-unknown-bit-named", Expect.Refuse, "incompatible bit 10 set and named 'evil\\n\"feature\"' in the feature name table",
            (l, p) => p.U64(72, 1UL << 10).U8(Fnt(l).At + 8, 0).U8(Fnt(l).At + 9, 10).Fill(Fnt(l).At + 10, 46, 0).Text(Fnt(l).At + 10, "evil\n\"feature\""));
        A("fnt-names-unknown-bit-unterminated", Expect.Refuse, "incompatible bit 12 set and named by 46 bytes with no NUL",
            (l, p) => p.U64(72, 1UL << 12).U8(Fnt(l).At + 8, 0).U8(Fnt(l).At + 9, 12).Fill(Fnt(l).At + 10, 46, 0xe9));
        A("fnt-duplicate", Expect.Any, "a second feature name table right after the first",
            (l, p) => p.Bytes(l.EndOfExtensions, l.Bytes.AsSpan(Fnt(l).At, 8 + Fnt(l).Length)).U32(l.EndOfExtensions + 8 + Fnt(l).Length, 0));
        A("end-missing", Expect.Any, "no end-of-extensions marker: the rest of the first cluster = 0xff",
            (l, p) => p.Fill(l.EndOfExtensions, l.ClusterSize - l.EndOfExtensions, 0xff));
        A("end-missing-zero-length", Expect.Any, "the rest of the first cluster = unknown type 1, length 0, repeated",
            (l, p) => { for (var at = l.EndOfExtensions; at + 8 <= l.ClusterSize; at += 8) p.U32(at, 1).U32(at + 4, 0); });
        A("unknown-huge", Expect.Refuse, "an unknown extension with length 0xfffffff8", (l, p) => p.U32(l.EndOfExtensions, 0xabcdef01).U32(l.EndOfExtensions + 4, 0xfffffff8));
        A("unknown-unaligned", Expect.Any, "an unknown extension of length 5 then the end marker", (l, p) => p.U32(l.EndOfExtensions, 0xabcdef01).U32(l.EndOfExtensions + 4, 5).Fill(l.EndOfExtensions + 8, 5, 0x41).U64(l.EndOfExtensions + 16, 0));
        A("bitmaps-no-autoclear", Expect.Any, "a bitmaps extension (nb_bitmaps 1, directory past EOF) without autoclear bit 0",
            (l, p) => p.U32(l.EndOfExtensions, ImageLayout.Bitmaps).U32(l.EndOfExtensions + 4, 24).U32(l.EndOfExtensions + 8, 1).U32(l.EndOfExtensions + 12, 0).U64(l.EndOfExtensions + 16, 4096).U64(l.EndOfExtensions + 24, PastEof(l)).U64(l.EndOfExtensions + 32, 0));
        A("bitmaps-huge", Expect.Refuse, "a bitmaps extension with nb_bitmaps 0xffffffff, directory size 2^63, autoclear bit 0",
            (l, p) => p.U64(88, 1).U32(l.EndOfExtensions, ImageLayout.Bitmaps).U32(l.EndOfExtensions + 4, 24).U32(l.EndOfExtensions + 8, 0xffffffff).U32(l.EndOfExtensions + 12, 0).U64(l.EndOfExtensions + 16, Bit63).U64(l.EndOfExtensions + 24, 0).U64(l.EndOfExtensions + 32, 0));
        A("bitmaps-length-0", Expect.Any, "a bitmaps extension of length 0 with autoclear bit 0",
            (l, p) => p.U64(88, 1).U32(l.EndOfExtensions, ImageLayout.Bitmaps).U32(l.EndOfExtensions + 4, 0).U64(l.EndOfExtensions + 8, 0));
        A("crypto-header", Expect.Refuse, "a full disk encryption extension (offset past EOF, length huge) with crypt_method 0",
            (l, p) => p.U32(l.EndOfExtensions, ImageLayout.FullDiskEncryption).U32(l.EndOfExtensions + 4, 16).U64(l.EndOfExtensions + 8, PastEof(l)).U64(l.EndOfExtensions + 16, Max64).U64(l.EndOfExtensions + 24, 0));
        A("crypto-luks-bad", Expect.Refuse, "crypt_method 2 (LUKS) with a crypto extension of length 3",
            (l, p) => p.U32(32, 2).U32(l.EndOfExtensions, ImageLayout.FullDiskEncryption).U32(l.EndOfExtensions + 4, 3).U64(l.EndOfExtensions + 16, 0));
        A("data-file-no-bit", Expect.Any, "an external data file name extension ('data.raw') without incompatible bit 2",
            (l, p) => p.U32(l.EndOfExtensions, ImageLayout.ExternalDataFile).U32(l.EndOfExtensions + 4, 8).Text(l.EndOfExtensions + 8, "data.raw").U64(l.EndOfExtensions + 16, 0));
        A("data-file-bit-escape", Expect.Refuse, "incompatible bit 2 with external data file '../../etc/passwd'",
            (l, p) => p.U64(72, 4).U32(l.EndOfExtensions, ImageLayout.ExternalDataFile).U32(l.EndOfExtensions + 4, 16).Text(l.EndOfExtensions + 8, "../../etc/passwd").U64(l.EndOfExtensions + 24, 0));
        A("backing-format-without-backing", Expect.Any, "a backing format extension 'qcow2' on an image without a backing file",
            (l, p) => p.U32(l.EndOfExtensions, ImageLayout.BackingFormat).U32(l.EndOfExtensions + 4, 5).Text(l.EndOfExtensions + 8, "qcow2").U64(l.EndOfExtensions + 16, 0));
        A("noise-after-header", Expect.Any, "the extension area (header_length..cluster end) = random noise",
            (l, p) => p.Noise(l.HeaderLength, l.ClusterSize - l.HeaderLength, 1302));
        A("fnt-over-l1", Expect.Any, "header_length moved so the extensions start in the next cluster (= the refcount table)", (l, p) => p.U32(100, (uint)l.RefcountTableOffset));
    }
}
