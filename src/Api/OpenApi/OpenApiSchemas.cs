using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using QcowActors.Api.Http;

namespace QcowActors.Api.OpenApi;

/// <summary>Hand-built schemas for bodies parsed by hand (a size is a number or a "10G" string).</summary>
internal static class OpenApiSchemas
{
    private static OpenApiSchema ByteSize(string description) => new()
    {
        Description = description,
        OneOf =
        [
            new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64", Minimum = "0" },
            new OpenApiSchema { Type = JsonSchemaType.String, Pattern = "^[0-9]+(\\.[0-9]+)?([KMGTPEkmgtpe](i?[Bb])?|[Bb])?$" },
        ],
    };

    public static IOpenApiSchema CreateImageRequest() => new OpenApiSchema
    {
        Type = JsonSchemaType.Object,
        Required = new HashSet<string> { "name", "size" },
        Properties = new Dictionary<string, IOpenApiSchema>
        {
            ["name"] = new OpenApiSchema { Type = JsonSchemaType.String, Pattern = ImageName.Pattern },
            ["size"] = ByteSize("Virtual disk size: bytes, or with a binary suffix like qemu-img (\"10G\", \"512M\", \"10GiB\")."),
            ["clusterSize"] = ByteSize("Cluster size, a power of two from 512 to 2 MiB (\"64K\"). Default 64 KiB."),
            ["refcountBits"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Integer,
                Enum = [1, 2, 4, 8, 16, 32, 64],
                Default = 16,
                Description = "Refcount width in bits. Version 2 images need 16.",
            },
            ["version"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Integer,
                Enum = [2, 3],
                Default = 3,
                Description = "qcow2 version: 3 (compat 1.1) or 2 (compat 0.10: refcountBits 16, no zstd, extendedL2 or lazyRefcounts).",
            },
            ["compressionType"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                Enum = [(JsonNode)"zlib", (JsonNode)"zstd"],
                Default = "zlib",
                Description = "Compression type recorded in the header (version 3 only); zstd sets incompatible bit 3.",
            },
            ["extendedL2"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Boolean,
                Default = false,
                Description = "Extended L2 entries (subclusters): version 3, clusters of at least 16 KiB. This server does not serve their data (422).",
            },
            ["lazyRefcounts"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Boolean,
                Default = false,
                Description = "Sets the lazy refcounts compatible bit (version 3 only); this server keeps ordered writes regardless.",
            },
            ["preallocation"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                Enum = [(JsonNode)"off", (JsonNode)"metadata"],
                Default = "off",
                Description = "metadata: every L2 table and data cluster allocated as qemu-img does; up to 8 TiB and 2 GiB of tables.",
            },
        },
    };

    public static IOpenApiSchema PatchRequest() => new OpenApiSchema
    {
        Type = JsonSchemaType.Object,
        Required = new HashSet<string> { "op" },
        Description = "imageio PATCH: {\"op\":\"zero\",\"offset\",\"size\",\"flush\"} or {\"op\":\"flush\"}.",
        Properties = new Dictionary<string, IOpenApiSchema>
        {
            ["op"] = new OpenApiSchema { Type = JsonSchemaType.String, Enum = [(JsonNode)"zero", (JsonNode)"flush"] },
            ["offset"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64", Minimum = "0" },
            ["size"] = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int64", Minimum = "0" },
            ["flush"] = new OpenApiSchema { Type = JsonSchemaType.Boolean, Default = false },
        },
    };

    public static IOpenApiSchema CreateSnapshotRequest() => new OpenApiSchema
    {
        Type = JsonSchemaType.Object,
        Required = new HashSet<string> { "name" },
        Properties = new Dictionary<string, IOpenApiSchema>
        {
            ["name"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                MinLength = 1,
                Description = "Unique among the image's snapshots; 1 to 255 bytes of UTF-8, no control characters, not all digits (that reads as an id).",
            },
        },
    };

    public static IOpenApiSchema ResizeRequest() => new OpenApiSchema
    {
        Type = JsonSchemaType.Object,
        Required = new HashSet<string> { "size" },
        Properties = new Dictionary<string, IOpenApiSchema>
        {
            ["size"] = ByteSize("New virtual disk size, a multiple of 512: bytes, or with a binary suffix like qemu-img (\"10G\")."),
        },
    };

    public static IOpenApiSchema CreateBitmapRequest() => new OpenApiSchema
    {
        Type = JsonSchemaType.Object,
        Required = new HashSet<string> { "name" },
        Properties = new Dictionary<string, IOpenApiSchema>
        {
            ["name"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                MinLength = 1,
                Description = "Unique among the image's bitmaps; 1 to 1023 bytes of UTF-8, no control characters, no '/'.",
            },
            ["granularity"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Integer,
                Format = "int64",
                Description = "Bytes of disk per bit: a power of two from 4096 to 2097152 (default 65536).",
            },
            ["enabled"] = new OpenApiSchema { Type = JsonSchemaType.Boolean, Description = "Whether it tracks writes from now (default true)." },
            ["checkpoint"] = new OpenApiSchema
            {
                Type = JsonSchemaType.Boolean,
                Description = "Also take an internal snapshot of the same name: the disk as of the bitmap's start, to copy from while writes go on (default false).",
            },
        },
    };

    public static IOpenApiSchema PatchBitmapRequest() => new OpenApiSchema
    {
        Type = JsonSchemaType.Object,
        Description = "Either {\"enabled\": true|false} or {\"op\": \"clear\"} (both may be given).",
        Properties = new Dictionary<string, IOpenApiSchema>
        {
            ["enabled"] = new OpenApiSchema { Type = JsonSchemaType.Boolean, Description = "Start or stop tracking writes." },
            ["op"] = new OpenApiSchema { Type = JsonSchemaType.String, Enum = [(JsonNode)"clear"], Description = "clear: every bit reset." },
        },
    };

    public static IOpenApiSchema Binary() => new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" };
}
