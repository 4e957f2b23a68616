namespace QcowActors.EndToEnd.Tests.Corpus;

/// <summary>
/// The corrupt-image corpus: every case named, described and derived deterministically from a
/// source image (<see cref="SourceImages"/>). The list is the manifest (corpus-manifest.tsv is its
/// printed form, checked against it by the test). Categories live in the partial files.
/// </summary>
internal static partial class CorpusGenerator
{
    public const ulong Copied = 1UL << 63;
    public const ulong Compressed = 1UL << 62;
    public const ulong ZeroFlag = 1;
    public const ulong Max64 = ulong.MaxValue;
    public const ulong Bit63 = 1UL << 63;
    public const ulong Far = 1UL << 40; // a cluster-aligned offset far past any corpus file (1 TiB)

    // Lazy: the partial files' static tables must be initialized before the cases are built.
    private static readonly Lazy<List<CorpusCase>> LazyAll = new(Build);

    public static IReadOnlyList<CorpusCase> All => LazyAll.Value;

    private static List<CorpusCase> Build()
    {
        var list = new List<CorpusCase>();
        HeaderCases(list);
        ExtensionCases(list);
        L1Cases(list);
        L2Cases(list);
        CompressedCases(list);
        ExtendedL2Cases(list);
        RefcountCases(list);
        SnapshotCases(list);
        BackingCases(list);
        HandMadeCases(list);
        var duplicate = list.GroupBy(c => c.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new InvalidOperationException($"corpus case name {duplicate.Key} is used twice");
        return list;
    }

    /// <summary>Adds a case; the category goes in front of the name.</summary>
    private static void Add(List<CorpusCase> list, string category, string name, string source, Expect expect, string damage, Action<ImageLayout, Patch> apply)
        => list.Add(new CorpusCase($"{category}-{name}", category, source, damage, expect, apply));

    /// <summary>A cluster-aligned offset at the first cluster boundary past the end of the file.</summary>
    public static ulong PastEof(ImageLayout l) => (ulong)l.EndCluster;
}
