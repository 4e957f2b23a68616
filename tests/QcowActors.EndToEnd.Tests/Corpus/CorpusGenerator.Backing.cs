using System.Text;

namespace QcowActors.EndToEnd.Tests.Corpus;

internal static partial class CorpusGenerator
{
    private static void BackingCases(List<CorpusCase> list)
    {
        const string c = "bk";
        var s = SourceImages.Overlay;
        void A(string name, Expect e, string damage, Action<ImageLayout, Patch> apply) => Add(list, c, name, s, e, damage, apply);

        // The recorded name (the rest of the first cluster after the extensions).
        foreach (var (n, name, expect) in new (string, string, Expect)[]
        {
            ("dotdot", "../corpus-base.qcow2", Expect.Refuse), ("abs-etc", "/etc/passwd", Expect.Refuse), ("abs-dev-zero", "/dev/zero", Expect.Refuse),
            ("abs-proc", "/proc/self/mem", Expect.Refuse), ("nbd", "nbd:127.0.0.1:10809", Expect.Refuse), ("json", "json:{\"file.driver\":\"file\",\"file.filename\":\"/etc/passwd\"}", Expect.Refuse),
            ("http", "http://127.0.0.1:1/x.qcow2", Expect.Refuse), ("missing", "nothere.qcow2", Expect.Refuse), ("vmdk", "corpus-base.vmdk", Expect.Refuse),
            ("raw-missing", "corpus-base.raw", Expect.Refuse), ("dot", ".", Expect.Refuse), ("slash", "/", Expect.Refuse), ("dir-in-store", "./", Expect.Refuse),
            ("nul-inside", "corpus-base.qcow2\0evil", Expect.Refuse), ("nul-first", "\0corpus-base.qcow2", Expect.Refuse), ("all-nul", "\0\0\0\0\0\0\0\0", Expect.Refuse),
            ("newline", "corpus-base.qcow2\n", Expect.Refuse), ("space", " corpus-base.qcow2", Expect.Refuse), ("backslash", "..\\corpus-base.qcow2", Expect.Refuse),
            ("long-1023", new string('a', 1017) + ".qcow2", Expect.Refuse), ("long-4000", new string('b', 3994) + ".qcow2", Expect.Refuse),
            ("tilde", "~/corpus-base.qcow2", Expect.Refuse), ("percent", "%2e%2e/corpus-base.qcow2", Expect.Refuse),
        })
            A($"name-{n}", expect, $"backing name = {Printable(name)}", (l, p) => SetBackingName(l, p, Encoding.UTF8.GetBytes(name)));
        A("name-invalid-utf8", Expect.Refuse, "backing name = invalid UTF-8 bytes + '.qcow2'", (l, p) => SetBackingName(l, p, [0xff, 0xfe, 0xc0, 0x2e, 0x71, 0x63, 0x6f, 0x77, 0x32]));
        A("name-self", Expect.Refuse, "backing name = the overlay itself (a cycle)", (l, p) => SetBackingName(l, p, Encoding.UTF8.GetBytes(p.CaseName + ".qcow2")));
        A("name-self-abs-dotdot", Expect.Refuse, "backing name = ./x/../<itself> (a cycle spelled differently)", (l, p) => SetBackingName(l, p, Encoding.UTF8.GetBytes($"./x/../{p.CaseName}.qcow2")));
        // Offset and size of the name.
        foreach (var v in new uint[] { 0, 1, 1023, 1024, 0xffff, 0x10000, 0x7fffffff, 0xffffffff })
            A($"size-{v:x}", v is 0 ? Expect.Any : Expect.Refuse, $"backing_file_size = {v:#x}", (_, p) => p.U32(16, v));
        A("offset-cluster-end", Expect.Refuse, "backing_file_offset = cluster end − 4 (the name crosses into the next cluster)", (l, p) => p.U64(8, (ulong)l.ClusterSize - 4));
        A("offset-next-cluster", Expect.Refuse, "backing_file_offset = cluster size (the name lies in the refcount table)", (l, p) => p.U64(8, (ulong)l.ClusterSize));
        A("offset-past-eof", Expect.Refuse, "backing_file_offset past EOF", (l, p) => p.U64(8, PastEof(l)));
        A("offset-far", Expect.Refuse, "backing_file_offset = 2^63", (_, p) => p.U64(8, Bit63));
        A("offset-max", Expect.Refuse, "backing_file_offset = 2^64-1", (_, p) => p.U64(8, Max64));
        A("offset-0", Expect.Any, "backing_file_offset = 0 with the size kept (size without a name)", (_, p) => p.U64(8, 0));
        A("offset-header", Expect.Refuse, "backing_file_offset = 4 (the name is the header's own bytes)", (_, p) => p.U64(8, 4));
        A("offset-extensions", Expect.Refuse, "backing_file_offset = header_length (the name overlaps the extensions)", (l, p) => p.U64(8, (ulong)l.HeaderLength));
        // The backing format extension.
        foreach (var (n, fmt) in new (string, string)[] { ("raw", "raw"), ("vmdk", "vmdk"), ("empty", ""), ("qcow", "qcow"), ("nul", "qcow2\0\0\0"), ("upper", "QCOW2") })
            A($"format-{n}", n == "nul" ? Expect.Any : Expect.Refuse, $"backing format = {Printable(fmt)}", (l, p) => SetBackingFormat(l, p, Encoding.UTF8.GetBytes(fmt)));
        A("format-length-huge", Expect.Refuse, "backing format extension length = 0xfffffff0", (l, p) => p.U32(Bf(l).At + 4, 0xfffffff0));
        A("format-length-past-cluster", Expect.Refuse, "backing format extension length runs past the first cluster", (l, p) => p.U32(Bf(l).At + 4, (uint)(l.ClusterSize - Bf(l).At)));
        A("format-missing", Expect.Refuse, "backing format extension turned into an unknown one (format not recorded)", (l, p) => p.U32(Bf(l).At, 0x11111111));
        // A damaged backing file (the overlay names "<case>-b.qcow2").
        foreach (var (n, damage, apply) in new (string, string, Action<ImageLayout, Patch>)[]
        {
            ("magic", "magic = 0", (_, b) => b.U32(0, 0)),
            ("l1-size-huge", "l1_size = 0x7fffffff", (_, b) => b.U32(36, 0x7fffffff)),
            ("l1-past-eof", "l1_table_offset past EOF", (l, b) => b.U64(40, PastEof(l))),
            ("l2e0-past-eof", "L2 entry of guest 0 → past EOF", (l, b) => b.U64(l.L2EntryAt(0), Copied | PastEof(l))),
            ("l2e0-header", "L2 entry of guest 0 → the header", (l, b) => b.U64(l.L2EntryAt(0), Copied)),
            ("l2e-mid-l1", "L2 entry of guest 32 MiB → the L1 table", (l, b) => b.U64(l.L2EntryAt(32 << 20), Copied | (ulong)l.L1Offset)),
            ("l1e0-far", "L1 entry 0 → 1 TiB", (l, b) => b.U64(l.L1Offset, Copied | Far)),
            ("refcount-table-past-eof", "refcount_table_offset past EOF", (l, b) => b.U64(48, PastEof(l))),
            ("corrupt-bit", "incompatible bit 1 (corrupt)", (l, b) => b.U64(72, l.Incompatible | 2)),
            ("dirty-bit", "incompatible bit 0 (dirty) with refcount block 0 zeroed", (l, b) => b.U64(72, l.Incompatible | 1).Fill(l.RefcountBlocks[0], l.ClusterSize, 0)),
            ("unknown-bit", "incompatible bit 9", (l, b) => b.U64(72, l.Incompatible | (1UL << 9))),
            ("size-huge", "size = 2^62", (_, b) => b.U64(24, 1UL << 62)),
            ("truncated", "the file cut to 1000 bytes", (_, b) => b.Truncate(1000)),
            ("empty", "an empty file", (_, b) => b.Truncate(0)),
        })
            A($"base-{n}", Expect.Any, $"the backing file damaged: {damage}", (l, p) =>
            {
                var baseBytes = p.Sources[SourceImages.Base];
                var b = new Patch(baseBytes, p.CaseName + "-b", p.Sources);
                apply(new ImageLayout(baseBytes), b);
                SetBackingName(l, p, Encoding.UTF8.GetBytes(p.CaseName + "-b.qcow2"));
                p.Extra(p.CaseName + "-b.qcow2", b.Result());
            });
        A("base-cycle-of-two", Expect.Refuse, "the backing file is an overlay whose backing file is the overlay", (l, p) =>
        {
            var other = new Patch(l.Bytes, p.CaseName + "-b", p.Sources);
            SetBackingName(l, other, Encoding.UTF8.GetBytes(p.CaseName + ".qcow2"));
            SetBackingName(l, p, Encoding.UTF8.GetBytes(p.CaseName + "-b.qcow2"));
            p.Extra(p.CaseName + "-b.qcow2", other.Result());
        });
        A("base-not-qcow2", Expect.Any, "the backing file (.qcow2) holds random bytes", (l, p) =>
        {
            SetBackingName(l, p, Encoding.UTF8.GetBytes(p.CaseName + "-b.qcow2"));
            var r = new Random(2001);
            var b = new byte[1 << 20];
            r.NextBytes(b);
            p.Extra(p.CaseName + "-b.qcow2", b);
        });
    }

    private static ImageLayout.Extension Bf(ImageLayout l) => l.FindExtension(ImageLayout.BackingFormat) ?? throw new InvalidOperationException("no backing format extension");

    /// <summary>Writes a new name where the old one was (the rest of the first cluster) and its length.</summary>
    private static void SetBackingName(ImageLayout l, Patch p, byte[] name)
    {
        p.Fill(l.BackingOffset, l.ClusterSize - (int)l.BackingOffset, 0).Bytes(l.BackingOffset, name).U32(16, (uint)name.Length);
    }

    /// <summary>Rewrites the backing format extension's value in place (the name after it is moved along).</summary>
    private static void SetBackingFormat(ImageLayout l, Patch p, byte[] format)
    {
        var bf = Bf(l);
        var old = (bf.Length + 7) / 8 * 8;
        var now = (format.Length + 7) / 8 * 8;
        var tail = l.Bytes.AsSpan(bf.At + 8 + old, (int)(l.BackingOffset + l.BackingSize) - (bf.At + 8 + old)).ToArray();
        p.Fill(bf.At, l.ClusterSize - bf.At, 0).U32(bf.At + 4, (uint)format.Length).U32(bf.At, ImageLayout.BackingFormat).Bytes(bf.At + 8, format).Bytes(bf.At + 8 + now, tail);
        p.U64(8, (ulong)(l.BackingOffset - old + now));
    }

    private static string Printable(string s)
    {
        var sb = new StringBuilder("'");
        foreach (var ch in s.Length > 40 ? s[..20] + "…" + s[^10..] : s)
            sb.Append(ch < 0x20 ? $"\\x{(int)ch:x2}" : ch.ToString());
        return sb.Append('\'').Append(s.Length > 40 ? $" ({s.Length} chars)" : "").ToString();
    }
}
