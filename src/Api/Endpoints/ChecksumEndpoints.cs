using System.IO.Pipelines;
using Microsoft.AspNetCore.Mvc;
using Org.BouncyCastle.Crypto;
using QcowActors.Actors.Service;
using QcowActors.Api.Checksums;
using QcowActors.Api.Http;
using QcowActors.Api.OpenApi;
using QcowActors.Api.Problems;

namespace QcowActors.Api.Endpoints;

/// <summary>
/// GET /images/{name}/data/checksum and …/checksum/algorithms, compatible with ovirt-imageio's
/// checksum handler: a client that hashes its copy the same way (<see cref="BlockChecksum"/>)
/// verifies a transfer without reading the disk back.
/// </summary>
internal static class ChecksumEndpoints
{
    public static void MapChecksums(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/images/{name}/data/checksum", ChecksumAsync)
            .WithTags("Disk data")
            .WithName("DiskChecksum")
            .WithSummary("Checksum of the whole disk, as ovirt-imageio computes it (the hash of the block hashes)")
            .WithQueryParameter("algorithm", "blake2b (default) or another of …/checksum/algorithms.")
            .WithQueryParameter("block_size", "Bytes per block: a multiple of 4096 up to 16 MiB (default 4194304).")
            .Produces<ChecksumResult>(StatusCodes.Status200OK)
            .ProducesProblems(400, 404, 409, 422, 503);

        routes.MapGet("/images/{name}/data/checksum/algorithms", (string name) => ImageName.Validate(name) is { } error
                ? ApiProblems.BadRequest(error)
                : TypedResults.Ok(new AlgorithmList(BlockChecksum.Names)))
            .WithTags("Disk data")
            .WithName("ChecksumAlgorithms")
            .WithSummary("The algorithms the checksum endpoint takes")
            .Produces<AlgorithmList>(StatusCodes.Status200OK)
            .ProducesProblems(400);
    }

    /// <summary>imageio's member names: block_size, not blockSize.</summary>
    public sealed record ChecksumResult(
        [property: System.Text.Json.Serialization.JsonPropertyName("algorithm")] string Algorithm,
        [property: System.Text.Json.Serialization.JsonPropertyName("block_size")] int BlockSize,
        [property: System.Text.Json.Serialization.JsonPropertyName("checksum")] string Checksum);

    public sealed record AlgorithmList(IReadOnlyList<string> Algorithms);

    internal static async Task<IResult> ChecksumAsync(string name, HttpContext context, [FromServices] IImageService images)
    {
        if (ImageName.Validate(name) is { } error)
            return ApiProblems.BadRequest(error);
        var (query, queryError) = ParseQuery(context);
        if (queryError is not null)
            return ApiProblems.BadRequest(queryError);
        CancellationToken ct = context.RequestAborted;
        long size = (await images.GetInfoAsync(name, ct)).VirtualSize;
        return await ComputeAsync(query, size, await images.GetExtentsAsync(name, ct), (offset, length, token) => images.PlanReadAsync(name, offset, length, token), ct);
    }

    /// <summary>The checksum of a snapshot's disk (a checkpoint read through a bitmap's transfer URL).</summary>
    internal static async Task<IResult> SnapshotChecksumAsync(HttpContext context, SnapshotView view)
    {
        var (query, queryError) = ParseQuery(context);
        if (queryError is not null)
            return ApiProblems.BadRequest(queryError);
        return await ComputeAsync(query, view.VirtualSize, view.GetExtentsAsync(context.RequestAborted), view.PlanReadAsync, context.RequestAborted);
    }

    private readonly record struct ChecksumQuery(string Algorithm, int BlockSize);

    /// <summary>algorithm and block_size as imageio takes them, or why either is refused.</summary>
    private static (ChecksumQuery Query, string? Error) ParseQuery(HttpContext context)
    {
        string algorithm = context.Request.Query["algorithm"].ToString() is { Length: > 0 } a ? a : BlockChecksum.DefaultAlgorithm;
        if (BlockChecksum.Create(algorithm) is null)
            return (default, $"algorithm '{algorithm}' is not supported: use one of {string.Join(", ", BlockChecksum.Names)}");
        long blockSize = BlockChecksum.DefaultBlockSize;
        if (context.Request.Query["block_size"].ToString() is { Length: > 0 } text && !long.TryParse(text, System.Globalization.NumberStyles.None, null, out blockSize))
            return (default, $"block_size must be a number of bytes, not '{text}'");
        return BlockChecksum.CheckBlockSize(blockSize) is { } sizeError ? (default, sizeError) : (new ChecksumQuery(algorithm, (int)blockSize), null);
    }

    private static async Task<IResult> ComputeAsync(ChecksumQuery query, long size, IAsyncEnumerable<DiskExtent> allExtents,
        Func<long, long, CancellationToken, Task<DiskReadPlan>> planRead, CancellationToken ct)
    {
        var (algorithm, blockSize) = query;
        var final = BlockChecksum.Create(algorithm)!;
        await using var extents = allExtents.GetAsyncEnumerator(ct);
        bool hasExtent = await extents.MoveNextAsync();
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 1 << 20, resumeWriterThreshold: 512 << 10));
        for (long start = 0; start < size; start += blockSize)
        {
            int length = (int)Math.Min(blockSize, size - start);
            // Extents tile the disk in order: skip those that end before the block, then see whether any data overlaps it.
            while (hasExtent && extents.Current.Start + extents.Current.Length <= start)
                hasExtent = await extents.MoveNextAsync();
            bool zero = true;
            while (hasExtent && zero && extents.Current.Start < start + length)
            {
                if (!extents.Current.Zero) zero = false;
                else if (extents.Current.Start + extents.Current.Length < start + length) hasExtent = await extents.MoveNextAsync();
                else break;
            }
            byte[] blockDigest = zero
                ? BlockChecksum.ZeroBlockDigest(algorithm, length)
                : await HashRangeAsync(planRead, start, length, BlockChecksum.Create(algorithm)!, pipe, ct);
            final.BlockUpdate(blockDigest, 0, blockDigest.Length);
        }
        return TypedResults.Ok(new ChecksumResult(algorithm, blockSize, Convert.ToHexStringLower(BlockChecksum.Finish(final))));
    }

    /// <summary>Streams one block through the digest: the pipe holds at most 1 MiB of it.</summary>
    private static async Task<byte[]> HashRangeAsync(Func<long, long, CancellationToken, Task<DiskReadPlan>> planRead, long offset, int length,
        IDigest digest, Pipe pipe, CancellationToken ct)
    {
        await using var plan = await planRead(offset, length, ct);
        var copy = CopyAsync(plan, pipe.Writer, ct);
        while (true)
        {
            ReadResult read = await pipe.Reader.ReadAsync(ct);
            foreach (var segment in read.Buffer)
                digest.BlockUpdate(segment.Span);
            pipe.Reader.AdvanceTo(read.Buffer.End);
            if (read.IsCompleted) break;
        }
        await pipe.Reader.CompleteAsync();
        await copy;
        pipe.Reset(); // both ends complete: ready for the next block
        return BlockChecksum.Finish(digest);
    }

    private static async Task CopyAsync(DiskReadPlan plan, PipeWriter writer, CancellationToken ct)
    {
        try
        {
            await plan.CopyToAsync(writer, ct);
            await writer.CompleteAsync();
        }
        catch (Exception e)
        {
            await writer.CompleteAsync(e);
            throw;
        }
    }
}
