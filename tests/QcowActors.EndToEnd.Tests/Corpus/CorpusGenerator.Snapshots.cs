namespace QcowActors.EndToEnd.Tests.Corpus;

internal static partial class CorpusGenerator
{
    private static void SnapshotCases(List<CorpusCase> list)
    {
        const string c = "snap";
        var s = SourceImages.Snapshots;
        void A(string name, Expect e, string damage, Action<ImageLayout, Patch> apply) => Add(list, c, name, s, e, damage, apply);
        static ImageLayout.SnapshotEntry S0(ImageLayout l) => l.Snapshots[0];
        static ImageLayout.SnapshotEntry S1(ImageLayout l) => l.Snapshots[1];

        foreach (var v in new uint[] { 0, 1, 3, 0xffff, 65537, 0x7fffffff, 0xffffffff })
            A($"nb-{v:x}", v is 0 or 1 ? Expect.Serve : Expect.Refuse, $"nb_snapshots = {v} (2 entries in the table)", (_, p) => p.U32(60, v));
        foreach (var (n, f) in new (string, Func<ImageLayout, ulong>)[]
        {
            ("0", _ => 0), ("8", _ => 8), ("misaligned", l => (ulong)l.SnapshotsOffset + 4), ("past-eof", PastEof), ("2p63", _ => Bit63),
            ("max", _ => Max64), ("l1", l => (ulong)l.L1Offset), ("refcount-table", l => (ulong)l.RefcountTableOffset), ("end-minus-16", l => (ulong)l.FileLength - 16),
        })
            A($"offset-{n}", Expect.Refuse, $"snapshots_offset → {n}", (l, p) => p.U64(64, f(l)));
        foreach (var (n, f) in new (string, Func<ImageLayout, ulong>)[]
        {
            ("0", _ => 0), ("header", _ => 512), ("misaligned", l => (ulong)S0(l).L1Offset + 8), ("past-eof", PastEof), ("far", _ => Far),
            ("2p63", _ => Bit63), ("max", _ => Max64), ("active-l1", l => (ulong)l.L1Offset), ("refcount-table", l => (ulong)l.RefcountTableOffset),
        })
            A($"e0-l1-offset-{n}", Expect.Any, $"snapshot 0's l1_table_offset → {n}", (l, p) => p.U64(S0(l).At, f(l)));
        foreach (var v in new uint[] { 0, 2, 0x400001, 0x7fffffff, 0xffffffff })
            A($"e0-l1-size-{v:x}", Expect.Any, $"snapshot 0's l1_size = {v:#x}", (l, p) => p.U32(S0(l).At + 8, v));
        foreach (var v in new ushort[] { 0, 0xff, 0xffff })
        {
            A($"e0-id-size-{v:x}", Expect.Any, $"snapshot 0's id_str_size = {v:#x}", (l, p) => p.U16(S0(l).At + 12, v));
            A($"e0-name-size-{v:x}", Expect.Any, $"snapshot 0's name_size = {v:#x}", (l, p) => p.U16(S0(l).At + 14, v));
        }
        foreach (var v in new uint[] { 0, 8, 15, 17, 1024, 0x10000, 0xffffffff })
            A($"e0-extra-size-{v:x}", v is 0 or 8 or 15 ? Expect.Any : Expect.Refuse, $"snapshot 0's extra_data_size = {v:#x}", (l, p) => p.U32(S0(l).At + 36, v));
        A("e0-vm-state-max", Expect.Any, "snapshot 0's vm_state_size (32 and 64 bit) = max", (l, p) => p.U32(S0(l).At + 32, uint.MaxValue).U64(S0(l).At + 40, Max64));
        A("e0-disk-size-max", Expect.Any, "snapshot 0's virtual disk size (extra data) = 2^64-1", (l, p) => p.U64(S0(l).At + 48, Max64));
        A("e0-disk-size-0", Expect.Any, "snapshot 0's virtual disk size = 0", (l, p) => p.U64(S0(l).At + 48, 0));
        A("e0-name-nul", Expect.Any, "snapshot 0's name and id bytes = NUL", (l, p) => p.Fill(S0(l).At + 40 + S0(l).ExtraSize, S0(l).IdSize + S0(l).NameSize, 0));
        A("e0-name-invalid-utf8", Expect.Any, "snapshot 0's name = invalid UTF-8 and control bytes", (l, p) => p.Bytes(S0(l).At + 40 + S0(l).ExtraSize + S0(l).IdSize, new byte[] { 0xff, 0x1b }));
        A("duplicate-id", Expect.Any, "snapshot 1 has snapshot 0's id and name", (l, p) => p.Bytes(S1(l).At + 40 + S1(l).ExtraSize, l.Bytes.AsSpan((int)(S0(l).At + 40 + S0(l).ExtraSize), S0(l).IdSize + S0(l).NameSize)));
        A("e1-same-l1-as-active", Expect.Any, "snapshot 1's L1 table = the active L1 table", (l, p) => p.U64(S1(l).At, (ulong)l.L1Offset));
        A("e1-same-l1-as-e0", Expect.Any, "snapshot 1's L1 table = snapshot 0's", (l, p) => p.U64(S1(l).At, (ulong)S0(l).L1Offset));
        A("table-noise", Expect.Any, "the snapshot table = random noise", (l, p) => p.Noise(l.SnapshotsOffset, S0(l).Length + S1(l).Length, 1901));
        A("table-cut", Expect.Refuse, "the file cut inside the snapshot table", (l, p) => p.Truncate(l.SnapshotsOffset + 20));
        // The snapshots' L1 tables and the L2 tables under them.
        foreach (var (n, f) in Targets.Where(t => t.Name != "l2-itself"))
            A($"e0-l1e0-{n}", Expect.Any, $"snapshot 0's L1 entry 0 → {n}", (l, p) => p.U64(S0(l).L1Offset, f(l)));
        A("e0-l1e0-reserved", Expect.Any, "snapshot 0's L1 entry 0 with reserved bits set", (l, p) => p.U64(S0(l).L1Offset, l.U64((int)S0(l).L1Offset) | 0x7f00_0000_0000_01fe));
        A("e0-l1e0-active-l2", Expect.Any, "snapshot 0's L1 entry 0 (COPIED) → the active L2 table", (l, p) => p.U64(S0(l).L1Offset, Copied | (ulong)l.L2Tables[0]));
        A("e0-l1-noise", Expect.Any, "snapshot 0's L1 table = random noise", (l, p) => p.Noise(S0(l).L1Offset, S0(l).L1Size * 8, 1902));
        A("e0-l2e0-past-eof", Expect.Any, "the L2 entry of guest 0 under snapshot 0's L1 (a table no longer active) → past EOF",
            (l, p) => p.U64(SnapshotL2(l, 0) , Copied | PastEof(l)));
        A("e0-l2e0-l1", Expect.Any, "the L2 entry of guest 0 under snapshot 0's L1 → the active L1 table",
            (l, p) => p.U64(SnapshotL2(l, 0), Copied | (ulong)l.L1Offset));
    }

    /// <summary>The file offset of guest 0's L2 entry under snapshot <paramref name="i"/>'s L1 table.</summary>
    private static long SnapshotL2(ImageLayout l, int i) => (long)(l.U64((int)l.Snapshots[i].L1Offset) & OffsetMask);
}
