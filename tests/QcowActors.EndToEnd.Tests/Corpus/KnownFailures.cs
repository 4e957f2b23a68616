namespace QcowActors.EndToEnd.Tests.Corpus;

/// <summary>
/// Corpus cases on which the server is known to break a rule (a 5xx, a hang, a slow answer), each
/// with the reason and where the fix lies. The test prints them and does not assert on them; it
/// says so, and says when one passes again so it can be removed from here.
/// </summary>
internal static class KnownFailures
{
    private const string ReadAbortedBeforeHeaders =
        "F1: a Range GET whose first cluster is compressed and does not inflate aborts the connection with no status at all "
        + "(src/Api/Endpoints/DiskReadEndpoints.cs:119-125 aborts even when nothing was sent); expected 422 problem+json";

    private const string NegativeRefcountBlockOffset =
        "F2: a cluster-aligned refcount table entry with bit 63 set is a negative offset, read at open; the ArgumentOutOfRangeException "
        + "becomes 503 'try again' on every request (src/Actors/Image/ImageOpener.cs:204 and :356 compare signed offsets); expected 422";

    private const string InPlaceWriteBeyondMaxFileSize =
        "F3: a COPIED L2 entry at host offset 2^56-512 is written in place; pwrite fails with EFBIG, answered 503 'try again' "
        + "(src/Actors/Image/Tables/WriteDecision.cs:153 checks fences only; src/Actors/Image/IoErrors.cs:25 maps every I/O error to 503); expected 422";

    private static readonly Dictionary<string, string> Reasons = new(StringComparer.Ordinal)
    {
        ["comp-all-ones"] = ReadAbortedBeforeHeaders,
        ["comp-all-past-eof"] = ReadAbortedBeforeHeaders,
        ["comp-data-bomb"] = ReadAbortedBeforeHeaders,
        ["comp-data-ff"] = ReadAbortedBeforeHeaders,
        ["comp-data-noise"] = ReadAbortedBeforeHeaders,
        ["comp-data-stored-huge"] = ReadAbortedBeforeHeaders,
        ["comp-data-zero"] = ReadAbortedBeforeHeaders,
        ["comp-offset-far"] = ReadAbortedBeforeHeaders,
        ["comp-offset-header"] = ReadAbortedBeforeHeaders,
        ["comp-offset-l1"] = ReadAbortedBeforeHeaders,
        ["comp-offset-l2-itself"] = ReadAbortedBeforeHeaders,
        ["comp-offset-last-byte"] = ReadAbortedBeforeHeaders,
        ["comp-offset-past-eof"] = ReadAbortedBeforeHeaders,
        ["comp-offset-plus-1"] = ReadAbortedBeforeHeaders,
        ["comp-table-cut"] = ReadAbortedBeforeHeaders,
        ["comp-zero-bit"] = ReadAbortedBeforeHeaders,
        ["l2-v2-e0-all-ones"] = ReadAbortedBeforeHeaders,
        ["l2-v2-e0-compressed-copied"] = ReadAbortedBeforeHeaders,
        ["l2-v2-e0-compressed-flag"] = ReadAbortedBeforeHeaders,
        ["l2-v2-table-all-ones"] = ReadAbortedBeforeHeaders,
        ["l2-v2-table-noise"] = ReadAbortedBeforeHeaders,
        ["l2-v3-e0-all-ones"] = ReadAbortedBeforeHeaders,
        ["l2-v3-e0-compressed-copied"] = ReadAbortedBeforeHeaders,
        ["l2-v3-e0-compressed-flag"] = ReadAbortedBeforeHeaders,
        ["l2-v3-table-all-ones"] = ReadAbortedBeforeHeaders,
        ["l2-v3-table-noise"] = ReadAbortedBeforeHeaders,
        ["xl2-compressed-noise"] = ReadAbortedBeforeHeaders,
        ["xl2-compressed-with-bitmap"] = ReadAbortedBeforeHeaders,
        ["xl2-table-noise"] = ReadAbortedBeforeHeaders,
        ["hdr-v3-refcount_table_offset-l1"] = NegativeRefcountBlockOffset,
        ["hdr-v2-refcount_table_offset-l1"] = NegativeRefcountBlockOffset,
        ["rc-v3-t0-2p63"] = NegativeRefcountBlockOffset,
        ["rc-v3-t0-bit63-kept-offset"] = NegativeRefcountBlockOffset,
        ["rc-v2-t0-2p63"] = NegativeRefcountBlockOffset,
        ["rc-v2-t0-bit63-kept-offset"] = NegativeRefcountBlockOffset,
        ["l2-v3-e0-max-offset"] = InPlaceWriteBeyondMaxFileSize,
        ["l2-v2-e0-max-offset"] = InPlaceWriteBeyondMaxFileSize,
        ["xl2-e0-max-offset"] = InPlaceWriteBeyondMaxFileSize,
    };

    public static string? Reason(string caseName) => Reasons.GetValueOrDefault(caseName);

    public static IEnumerable<string> Names => Reasons.Keys;
}
