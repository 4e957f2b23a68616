using System.Text.Json;
using QcowActors.Api.Endpoints;
using Xunit;

namespace QcowActors.Api.Tests.Parsing;

public sealed class RequestBodyParsingTests
{
    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    [Theory]
    [InlineData("""{"name":"vm1","size":1073741824}""", 1073741824L, null, null)]
    [InlineData("""{"name":"vm1","size":"10G"}""", 10L << 30, null, null)]
    [InlineData("""{"name":"vm1","size":"1G","clusterSize":"64K","refcountBits":16}""", 1L << 30, 65536, 16)]
    [InlineData("""{"name":"vm1","size":1e9,"clusterSize":4096}""", 1000000000L, 4096, null)]
    [InlineData("""{"Name":"vm1","SIZE":"1M","clusterSize":null}""", 1L << 20, null, null)]
    public void Create_request_takes_sizes_as_numbers_or_suffixed_strings(string body, long size, int? cluster, int? bits)
    {
        Assert.True(CreateImageRequest.TryParse(Json(body), out CreateImageRequest? request, out string error), error);
        Assert.Equal(new CreateImageRequest("vm1", size, cluster, bits), request);
    }

    [Fact]
    public void Create_request_leaves_qemu_img_defaults_for_omitted_options()
    {
        Assert.True(CreateImageRequest.TryParse(Json("""{"name":"vm1","size":"1G"}"""), out CreateImageRequest? request, out string error), error);
        Assert.Equal(new QcowActors.Format.CreateOptions(1L << 30), request!.ToOptions());
    }

    [Fact]
    public void Create_request_takes_every_feature_option()
    {
        const string body = """{"name":"vm1","size":"1G","version":3,"compressionType":"ZSTD","extendedL2":true,"lazyRefcounts":true,"preallocation":"metadata"}""";
        Assert.True(CreateImageRequest.TryParse(Json(body), out CreateImageRequest? request, out string error), error);
        Assert.Equal(new QcowActors.Format.CreateOptions(1L << 30)
        {
            Version = 3, CompressionType = QcowActors.Format.QcowCompression.Zstd, ExtendedL2 = true, LazyRefcounts = true,
            Preallocation = QcowActors.Format.Preallocation.Metadata,
        }, request!.ToOptions());
    }

    [Theory]
    [InlineData("""{"size":"1G"}""", "name is required")]
    [InlineData("""{"name":5,"size":"1G"}""", "name is required")]
    [InlineData("""{"name":"../x","size":"1G"}""", "invalid")]
    [InlineData("""{"name":"vm1"}""", "size is required")]
    [InlineData("""{"name":"vm1","size":true}""", "size must be")]
    [InlineData("""{"name":"vm1","size":-1}""", "size must be")]
    [InlineData("""{"name":"vm1","size":1.5}""", "size must be")]
    [InlineData("""{"name":"vm1","size":"ten"}""", "size:")]
    [InlineData("""{"name":"vm1","size":"1G","clusterSize":"64Q"}""", "clusterSize:")]
    [InlineData("""{"name":"vm1","size":"1G","clusterSize":"4G"}""", "too large")]
    [InlineData("""{"name":"vm1","size":"1G","refcountBits":"16"}""", "refcountBits")]
    [InlineData("""{"name":"vm1","size":"1G","refcountBits":128}""", "refcountBits")]
    [InlineData("""{"name":"vm1","size":"1G","cluster_size":65536}""", "unknown member 'cluster_size'")]
    public void Create_request_errors_name_the_member_at_fault(string body, string reason)
    {
        Assert.False(CreateImageRequest.TryParse(Json(body), out _, out string error));
        Assert.Contains(reason, error);
    }

    [Theory]
    [InlineData("""{"op":"zero","offset":0,"size":4096}""", "Zero", 0, 4096, false)]
    [InlineData("""{"op":"zero","offset":65536,"size":1048576,"flush":true}""", "Zero", 65536, 1048576, true)]
    [InlineData("""{"op":"flush"}""", "Flush", 0, 0, true)]
    [InlineData("""{"op":"zero","offset":0,"size":0,"future":1}""", "Zero", 0, 0, false)]
    public void Patch_request_takes_imageio_zero_and_flush(string body, string op, long offset, long size, bool flush)
    {
        Assert.True(PatchRequest.TryParse(Json(body), out PatchRequest? request, out string error), error);
        Assert.Equal(new PatchRequest(Enum.Parse<PatchOperation>(op), offset, size, flush), request);
    }

    [Theory]
    [InlineData("""{}""", "op is required")]
    [InlineData("""{"op":"trim"}""", "not supported")]
    [InlineData("""{"op":"zero","size":1}""", "offset is required")]
    [InlineData("""{"op":"zero","offset":1}""", "size is required")]
    [InlineData("""{"op":"zero","offset":-1,"size":1}""", "offset must be")]
    [InlineData("""{"op":"zero","offset":"0","size":1}""", "offset must be")]
    [InlineData("""{"op":"zero","offset":0,"size":1,"flush":"yes"}""", "flush must be")]
    public void Patch_request_errors_name_the_member_at_fault(string body, string reason)
    {
        Assert.False(PatchRequest.TryParse(Json(body), out _, out string error));
        Assert.Contains(reason, error);
    }
}
