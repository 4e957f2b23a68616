using System.Text.Json;
using QcowActors.Api.Http;
using QcowActors.Format;

namespace QcowActors.Api.Endpoints;

/// <summary>
/// POST /images, validated member by member: {"name","size"} plus the optional layout and feature
/// options; with "backing" (an image of the store) an overlay, whose size defaults to the backing's (Size 0 here: not given). Combinations (version 2 with zstd, extended L2 below 16 KiB clusters, ...) are checked
/// by <see cref="ImageCreator.Plan"/>, the one place that knows what a layout can express.
/// </summary>
internal sealed record CreateImageRequest(string Name, long Size, int? ClusterSize, int? RefcountBits)
{
    private static readonly string[] Members =
        ["name", "size", "clusterSize", "refcountBits", "version", "compressionType", "extendedL2", "lazyRefcounts", "preallocation", "backing"];

    /// <summary>The image the overlay reads through (a name of the store: base, base.qcow2 or base.raw), or null.</summary>
    public string? Backing { get; init; }

    /// <summary>2 (compat 0.10) or 3 (compat 1.1).</summary>
    public int? Version { get; init; }
    public byte? CompressionType { get; init; }
    public bool? ExtendedL2 { get; init; }
    public bool? LazyRefcounts { get; init; }
    public Preallocation? Preallocation { get; init; }

    /// <summary>The request as the format's options, qemu-img's defaults for what it leaves out.</summary>
    public CreateOptions ToOptions()
    {
        var defaults = new CreateOptions(Size);
        return new CreateOptions(Size, ClusterSize ?? defaults.ClusterSize, RefcountBits ?? defaults.RefcountBits)
        {
            Version = Version ?? defaults.Version,
            CompressionType = CompressionType ?? defaults.CompressionType,
            ExtendedL2 = ExtendedL2 ?? defaults.ExtendedL2,
            LazyRefcounts = LazyRefcounts ?? defaults.LazyRefcounts,
            Preallocation = Preallocation ?? defaults.Preallocation,
            BackingFile = Backing,
        };
    }

    public static bool TryParse(JsonElement body, out CreateImageRequest? request, out string error)
    {
        request = null;
        if (JsonBody.UnknownMember(body, Members) is { } unknown)
        {
            error = unknown;
            return false;
        }

        if (!JsonBody.TryGet(body, "name", out JsonElement nameValue) || nameValue.ValueKind != JsonValueKind.String)
        {
            error = "name is required and must be a string";
            return false;
        }
        string name = nameValue.GetString()!;
        if (ImageName.Validate(name) is { } nameError)
        {
            error = nameError;
            return false;
        }

        string? backing = null;
        if (JsonBody.TryGet(body, "backing", out JsonElement backingValue))
        {
            if (backingValue.ValueKind != JsonValueKind.String || backingValue.GetString() is not { Length: > 0 } b)
            {
                error = $"backing must be the name of an image of the store, not {JsonBody.Describe(backingValue)}";
                return false;
            }
            backing = b;
        }

        long size = 0;
        if (!JsonBody.TryGet(body, "size", out JsonElement sizeValue))
        {
            if (backing is null)
            {
                error = "size is required: a number of bytes or a string such as \"10G\"";
                return false;
            }
        }
        else if (!JsonBody.TryGetByteSize(sizeValue, "size", out size, out error))
            return false;

        int? clusterSize = null;
        if (JsonBody.TryGet(body, "clusterSize", out JsonElement clusterValue))
        {
            if (!JsonBody.TryGetByteSize(clusterValue, "clusterSize", out long cluster, out error))
                return false;
            if (cluster > int.MaxValue)
            {
                error = $"clusterSize {cluster} is too large";
                return false;
            }
            clusterSize = (int)cluster;
        }

        int? refcountBits = null;
        if (JsonBody.TryGet(body, "refcountBits", out JsonElement bitsValue))
        {
            if (!JsonBody.TryGetWholeNumber(bitsValue, out long bits) || bits > 64)
            {
                error = $"refcountBits must be one of 1, 2, 4, 8, 16, 32, 64, not {JsonBody.Describe(bitsValue)}";
                return false;
            }
            refcountBits = (int)bits;
        }

        if (!TryGetFeatures(body, out var features, out error))
            return false;
        request = new CreateImageRequest(name, size, clusterSize, refcountBits)
        {
            Version = features.Version,
            CompressionType = features.CompressionType,
            ExtendedL2 = features.ExtendedL2,
            LazyRefcounts = features.LazyRefcounts,
            Preallocation = features.Preallocation,
            Backing = backing,
        };
        error = "";
        return true;
    }

    private readonly record struct Features(int? Version, byte? CompressionType, bool? ExtendedL2, bool? LazyRefcounts, Preallocation? Preallocation);

    private static bool TryGetFeatures(JsonElement body, out Features features, out string error)
    {
        features = default;
        error = "";
        int? version = null;
        if (JsonBody.TryGet(body, "version", out JsonElement versionValue))
        {
            if (!JsonBody.TryGetWholeNumber(versionValue, out long v) || v is not (2 or 3))
            {
                error = $"version must be 2 (compat 0.10) or 3 (compat 1.1), not {JsonBody.Describe(versionValue)}";
                return false;
            }
            version = (int)v;
        }

        byte? compression = null;
        if (JsonBody.TryGet(body, "compressionType", out JsonElement compressionValue))
        {
            compression = compressionValue.ValueKind != JsonValueKind.String ? null : compressionValue.GetString()?.ToLowerInvariant() switch
            {
                "zlib" => QcowCompression.Zlib,
                "zstd" => QcowCompression.Zstd,
                _ => null,
            };
            if (compression is null)
            {
                error = $"compressionType must be \"zlib\" or \"zstd\", not {JsonBody.Describe(compressionValue)}";
                return false;
            }
        }

        if (!TryGetBool(body, "extendedL2", out bool? extendedL2, out error) || !TryGetBool(body, "lazyRefcounts", out bool? lazy, out error))
            return false;

        Preallocation? preallocation = null;
        if (JsonBody.TryGet(body, "preallocation", out JsonElement preallocationValue))
        {
            preallocation = preallocationValue.ValueKind != JsonValueKind.String ? null : preallocationValue.GetString()?.ToLowerInvariant() switch
            {
                "off" => Format.Preallocation.Off,
                "metadata" => Format.Preallocation.Metadata,
                _ => null,
            };
            if (preallocation is null)
            {
                // falloc and full would write the whole disk inside the request: not offered.
                error = $"preallocation must be \"off\" or \"metadata\", not {JsonBody.Describe(preallocationValue)}";
                return false;
            }
        }
        features = new Features(version, compression, extendedL2, lazy, preallocation);
        return true;
    }

    private static bool TryGetBool(JsonElement body, string member, out bool? value, out string error)
    {
        value = null;
        error = "";
        if (!JsonBody.TryGet(body, member, out JsonElement element))
            return true;
        if (element.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            error = $"{member} must be true or false, not {JsonBody.Describe(element)}";
            return false;
        }
        value = element.GetBoolean();
        return true;
    }
}
