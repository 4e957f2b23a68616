using System.Text.Json;
using QcowActors.Api.Http;

namespace QcowActors.Api.Endpoints;

/// <summary>POST /images, validated: {"name","size"} plus optional "clusterSize" and "refcountBits".</summary>
internal sealed record CreateImageRequest(string Name, long Size, int? ClusterSize, int? RefcountBits)
{
    private static readonly string[] Members = ["name", "size", "clusterSize", "refcountBits"];

    public static bool TryParse(JsonElement body, out CreateImageRequest? request, out string error)
    {
        request = null;
        // Unknown members are refused rather than ignored: "cluster_size" silently dropped would
        // create an image with the wrong layout.
        foreach (JsonProperty p in body.EnumerateObject())
        {
            if (!Members.Contains(p.Name, StringComparer.OrdinalIgnoreCase))
            {
                error = $"unknown member '{p.Name}'; expected {string.Join(", ", Members)}";
                return false;
            }
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

        if (!JsonBody.TryGet(body, "size", out JsonElement sizeValue))
        {
            error = "size is required: a number of bytes or a string such as \"10G\"";
            return false;
        }
        if (!JsonBody.TryGetByteSize(sizeValue, "size", out long size, out error))
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

        request = new CreateImageRequest(name, size, clusterSize, refcountBits);
        error = "";
        return true;
    }
}
