using QcowActors.Api.Streaming;
using Xunit;

namespace QcowActors.Api.Tests.Parsing;

public sealed class ChunkPlannerTests
{
    private const int MiB = 1024 * 1024;

    [Fact]
    public void Aligned_start_takes_a_full_chunk() => Assert.Equal(8L * MiB, ChunkPlanner.NextEnd(0, 8 * MiB, long.MaxValue));

    [Fact]
    public void Misaligned_start_ends_its_first_chunk_on_a_MiB_boundary()
        => Assert.Equal(8L * MiB, ChunkPlanner.NextEnd(MiB / 2, 8 * MiB, long.MaxValue));

    [Fact]
    public void Chunk_never_passes_the_limit() => Assert.Equal(3L * MiB + 5, ChunkPlanner.NextEnd(MiB / 2, 8 * MiB, 3L * MiB + 5));

    [Fact]
    public void Chunk_smaller_than_the_alignment_is_not_shrunk_to_nothing()
        => Assert.Equal(100L + 4096, ChunkPlanner.NextEnd(100, 4096, long.MaxValue));

    [Fact]
    public void Chunk_smaller_than_the_alignment_stops_at_a_boundary_it_crosses()
        => Assert.Equal(MiB, ChunkPlanner.NextEnd(MiB - 100, 4096, long.MaxValue));

    [Fact]
    public void Position_at_the_limit_is_an_empty_chunk() => Assert.Equal(10L, ChunkPlanner.NextEnd(10, 4096, 10));
}
