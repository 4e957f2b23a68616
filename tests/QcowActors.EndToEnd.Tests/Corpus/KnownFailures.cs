namespace QcowActors.EndToEnd.Tests.Corpus;

/// <summary>
/// Corpus cases on which the server is known to break a rule (a 5xx, an unanswered request, a 4xx
/// without problem+json), grouped by root cause with the place of the fix. The test prints them and
/// does not assert on them; it says so, and says when one passes again so it can be removed here.
/// </summary>
internal static class KnownFailures
{
    private static readonly (string Reason, string[] Cases)[] Causes =
    [
        ("F1: a Range GET whose first cluster is compressed and does not inflate (bad descriptor or data) aborts the connection "
            + "before any byte or status is sent (src/Api/Endpoints/DiskReadEndpoints.cs:119-125 aborts even when the response has "
            + "not started); expected 422 problem+json (feature: corrupt compressed cluster)",
        [
            "comp-all-ones", "comp-all-past-eof", "comp-data-bomb", "comp-data-ff", "comp-data-noise", "comp-data-stored-huge",
            "comp-data-zero", "comp-offset-far", "comp-offset-header", "comp-offset-l1", "comp-offset-l2-itself", "comp-offset-last-byte",
            "comp-offset-past-eof", "comp-offset-plus-1", "comp-table-cut", "comp-zero-bit",
            "l2-v2-e0-all-ones", "l2-v2-e0-compressed-copied", "l2-v2-e0-compressed-flag", "l2-v2-table-all-ones", "l2-v2-table-noise",
            "l2-v3-e0-all-ones", "l2-v3-e0-compressed-copied", "l2-v3-e0-compressed-flag", "l2-v3-table-all-ones", "l2-v3-table-noise",
            "xl2-compressed-noise", "xl2-compressed-with-bitmap", "xl2-table-noise",
        ]),
        ("F2: a cluster-aligned refcount table entry with bit 63 set is a negative block offset; the open reads it "
            + "(src/Actors/Image/ImageOpener.cs:204 and :356 compare signed offsets, so it is neither 'past the end' nor skipped), the "
            + "ArgumentOutOfRangeException becomes 503 'try again' on every request (ImageSupervisor.cs:124); expected 422",
        [
            "hdr-v2-refcount_table_offset-l1", "hdr-v3-refcount_table_offset-l1",
            "rc-v2-t0-2p63", "rc-v2-t0-bit63-kept-offset", "rc-v3-t0-2p63", "rc-v3-t0-bit63-kept-offset",
        ]),
        ("F3: a COPIED L2 entry at host offset 2^56-512 is written in place; pwrite fails with EFBIG, answered 503 'try again' "
            + "(src/Actors/Image/Tables/WriteDecision.cs:153 checks fences only; src/Actors/Image/IoErrors.cs:25 maps every I/O error "
            + "but ENOSPC to 503); expected 422 corrupt",
        ["l2-v2-e0-max-offset", "l2-v3-e0-max-offset", "xl2-e0-max-offset"]),
        ("F4: a snapshot id made of NUL bytes is listed as is; every request naming it (%00 in the path) is refused by Kestrel "
            + "with a bare 400 (no problem+json) before any endpoint runs; expected ids a client can address, or the table refused as corrupt",
        ["snap-e0-name-nul"]),
        ("F5: POST/DELETE snapshot walks an L2 entry or compressed descriptor whose host cluster lies past the end of the file; "
            + "ShadowRefcounts.BlockAsync throws InvalidOperationException ('refcount block N lies past the rewrite's M blocks', "
            + "src/Actors/Image/Maintenance/ShadowRefcounts.cs:92, reached from MetadataRewrite.cs:147/151), mapped to 503 'try again' "
            + "(src/Actors/Store/ImageStoreActor.cs:304); expected 422 corrupt",
        [
            "comp-all-ones", "comp-offset-far", "l1-v2-e0-data-cluster", "l1-v3-e0-data-cluster",
            "l2-v2-e0-all-ones", "l2-v2-e0-max-offset", "l2-v2-mid-far-past-eof", "l2-v2-table-all-ones", "l2-v2-table-noise",
            "l2-v3-e0-all-ones", "l2-v3-e0-max-offset", "l2-v3-mid-far-past-eof", "l2-v3-table-all-ones", "l2-v3-table-noise",
            "snap-e0-l1e0-past-eof", "xl2-bit-cleared", "xl2-e0-max-offset", "xl2-table-noise",
        ]),
        ("F6: snapshot create on a closed version 2 image runs src/Actors/Image/Maintenance/MaintenanceRunner.cs without the open-time "
            + "checks (ImageOpener.FenceAsync), and v2 keeps no corrupt bit, so a refcount table entry of 2^64-1 (block offset -512) reaches "
            + "MetadataRewrite.cs:111 / ShadowRefcounts.cs:103 (negative index or offset), or a table overlapping another reaches "
            + "ShadowRefcounts.cs:92; mapped to 503 'try again' (ImageStoreActor.cs:304); expected 422 corrupt",
        ["hdr-v2-l1_table_offset-refcount-table", "l1-v2-e0-refcount-block", "rc-v2-t-last-max", "rc-v2-t0-max"]),
    ];

    private static readonly Dictionary<string, string> Reasons = Causes
        .SelectMany(c => c.Cases.Select(n => (Name: n, c.Reason)))
        .GroupBy(x => x.Name, StringComparer.Ordinal)
        .ToDictionary(g => g.Key, g => string.Join(" | ", g.Select(x => x.Reason)), StringComparer.Ordinal);

    public static string? Reason(string caseName) => Reasons.GetValueOrDefault(caseName);

    public static IEnumerable<string> Names => Reasons.Keys;
}
