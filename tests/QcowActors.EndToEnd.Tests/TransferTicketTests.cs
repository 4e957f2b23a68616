using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using QcowActors.Testing;
using Xunit;

namespace QcowActors.EndToEnd.Tests;

/// <summary>
/// Transfer tickets (imageio's model): POST /images/{name}/tickets hands out an id; /tickets/{id}/data
/// then serves that image's data to clients that send nothing else, until the ticket expires or
/// is deleted. (The full imageio transfer through a ticket is in <see cref="ImageioTransferTests"/>.)
/// </summary>
public sealed class TransferTicketTests(ServerFixture fixture) : IClassFixture<ServerFixture>, IDisposable
{
    private const int MiB = 1024 * 1024;
    private readonly TempDirectory _scratch = new("e2e-tickets");

    private static byte[] Bytes(string seed, int length)
    {
        var bytes = new byte[length];
        Pattern.Fill((ulong)seed.GetHashCode(), 0, bytes);
        return bytes;
    }

    /// <summary>A client with no credential and no base headers: what holds only a ticket.</summary>
    private HttpClient Bare() => new() { BaseAddress = fixture.Server.Client.BaseAddress };

    private async Task<string> ImageWithDataAsync(string name, long size = 8L * MiB)
    {
        await fixture.Server.Api.CreateAsync(name, size);
        var data = Bytes(name, MiB);
        await fixture.Server.Api.PutAsync(name, 3 * MiB + 512, data);
        return name;
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string detailPart)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: {(int)response.StatusCode} {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(detailPart, JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Qemu_http_driver_compares_the_image_through_a_read_ticket_with_no_header()
    {
        string name = await ImageWithDataAsync("ticket-qemu");
        var ticket = await fixture.Server.Api.CreateTicketAsync(name, "read");

        string http = RealClientTests.HttpDisk(fixture.Server.BaseUrl + ticket.Url);
        var compared = Qemu.Compare(fixture.Server.ImagePath(name), http, "-f", "qcow2", "-F", "raw");

        Assert.True(compared.Identical, $"image file vs ticket URL: {compared}");
        var bytes = Curl.GetRange(fixture.Server.BaseUrl + ticket.Url, 3 * MiB + 512, 4 * MiB + 511);
        Assert.Equal(Bytes(name, MiB), bytes);
    }

    [Fact]
    public async Task A_read_ticket_reads_but_refuses_writes_with_403_and_the_disk_is_unchanged()
    {
        string name = await ImageWithDataAsync("ticket-read");
        var ticket = await fixture.Server.Api.CreateTicketAsync(name, "read", "10m");
        Assert.Equal("read", ticket.Scope);
        Assert.Equal(name, ticket.Image);
        Assert.InRange(ticket.Expires - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(9), TimeSpan.FromMinutes(11));
        using var client = Bare();
        var api = new ImageApi(client).ThroughTicket(ticket.Url);

        Assert.Equal(Bytes(name, MiB), await api.GetRangeAsync(name, 3 * MiB + 512, MiB));
        Assert.Contains(await api.GetExtentsAsync(name), e => !e.Zero);
        Assert.True((await api.OptionsAsync(name)).TryGetProperty("features", out _));
        using (var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, ticket.Url)))
            Assert.Equal(8L * MiB, head.Content.Headers.ContentLength);

        using var put = new HttpRequestMessage(HttpMethod.Put, ticket.Url) { Content = new ByteArrayContent(new byte[4096]) };
        put.Content.Headers.ContentRange = new ContentRangeHeaderValue(3 * MiB + 512, 3 * MiB + 512 + 4095);
        await AssertProblemAsync(await client.SendAsync(put), HttpStatusCode.Forbidden, "write ticket");
        using var zero = new HttpRequestMessage(HttpMethod.Patch, ticket.Url)
        {
            Content = new StringContent($$"""{"op":"zero","offset":0,"size":{{8 * MiB}}}""", Encoding.UTF8, "application/json"),
        };
        await AssertProblemAsync(await client.SendAsync(zero), HttpStatusCode.Forbidden, "write ticket");
        Assert.Equal(Bytes(name, MiB), await fixture.Server.Api.GetRangeAsync(name, 3 * MiB + 512, MiB));
    }

    [Fact]
    public async Task The_checksum_through_a_read_ticket_equals_the_images_own()
    {
        string name = await ImageWithDataAsync("ticket-checksum");
        var ticket = await fixture.Server.Api.CreateTicketAsync(name, "read");
        using var client = Bare();

        string own = await fixture.Server.Client.GetStringAsync($"images/{name}/data/checksum?block_size=1048576");
        string viaTicket = await client.GetStringAsync(ticket.Url + "/checksum?block_size=1048576");
        string algorithms = await client.GetStringAsync(ticket.Url + "/checksum/algorithms");

        Assert.Equal(JsonDocument.Parse(own).RootElement.GetProperty("checksum").GetString(),
            JsonDocument.Parse(viaTicket).RootElement.GetProperty("checksum").GetString());
        Assert.Contains("blake2b", algorithms);
    }

    [Fact]
    public async Task A_deleted_ticket_answers_404_at_once_and_cannot_be_deleted_twice()
    {
        string name = await ImageWithDataAsync("ticket-deleted");
        var ticket = await fixture.Server.Api.CreateTicketAsync(name, "write");
        using var client = Bare();
        using (var before = await client.GetAsync(ticket.Url + "/extents"))
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);

        using (var deleted = await fixture.Server.Client.DeleteAsync($"images/{name}/tickets/{ticket.Id}"))
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);

        await AssertProblemAsync(await client.GetAsync(ticket.Url), HttpStatusCode.NotFound, "no such transfer ticket");
        await AssertProblemAsync(await fixture.Server.Client.DeleteAsync($"images/{name}/tickets/{ticket.Id}"), HttpStatusCode.NotFound, "no transfer ticket");
    }

    [Fact]
    public async Task An_expired_ticket_answers_404_and_its_file_is_swept()
    {
        string name = await ImageWithDataAsync("ticket-expired");
        var ticket = await fixture.Server.Api.CreateTicketAsync(name, "read", "1s");
        using var client = Bare();
        using (var live = await client.GetAsync(ticket.Url + "/extents"))
            Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        var clock = Stopwatch.StartNew();
        while (DateTimeOffset.UtcNow < ticket.Expires + TimeSpan.FromMilliseconds(50)) await Task.Delay(50);

        await AssertProblemAsync(await client.GetAsync(ticket.Url), HttpStatusCode.NotFound, "expired");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"waited {clock.Elapsed}");
        string folder = Path.Combine(fixture.Server.StoreDirectory, ".tickets");
        await fixture.Server.Api.CreateTicketAsync(name, "read", "1m"); // creating sweeps the expired files
        Assert.DoesNotContain(Directory.GetFiles(folder), f => File.GetLastWriteTimeUtc(f) < DateTime.UtcNow);
    }

    [Fact]
    public async Task The_store_keeps_no_usable_ticket_id()
    {
        string name = await ImageWithDataAsync("ticket-at-rest");
        var ticket = await fixture.Server.Api.CreateTicketAsync(name, "write");
        string folder = Path.Combine(fixture.Server.StoreDirectory, ".tickets");

        foreach (string file in Directory.GetFiles(folder))
        {
            Assert.DoesNotContain(ticket.Id, Path.GetFileName(file));
            Assert.DoesNotContain(ticket.Id, await File.ReadAllTextAsync(file));
        }
        Assert.DoesNotContain(ticket.Id, fixture.Server.Output);
    }

    public static TheoryData<string, string> BadTicketRequests() => new()
    {
        { "{}", "scope is required" },
        { """{"scope":"admin"}""", "scope is required" },
        { """{"scope":"read","expiresIn":"forever"}""", "expiresIn must be" },
        { """{"scope":"read","expiresIn":"1e300h"}""", "expiresIn must be" },
        { """{"scope":"read","expiresIn":"0s"}""", "expiresIn must be" },
        { """{"scope":"read","expiresIn":"8d"}""", "expiresIn must be" },
        { """{"scope":"read","expiresIn":3600}""", "expiresIn must be" },
        { """{"scope":"read","owner":"me"}""", "owner" },
        { """{"scope":"read","scope":"write"}""", "scope" },
        { "[]", "expected a JSON object" },
    };

    [Theory]
    [MemberData(nameof(BadTicketRequests))]
    public async Task A_malformed_ticket_request_is_a_400_problem(string body, string detailPart)
    {
        const string name = "ticket-bad";
        if (!File.Exists(fixture.Server.ImagePath(name))) await fixture.Server.Api.CreateAsync(name, MiB);
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        await AssertProblemAsync(await fixture.Server.Client.PostAsync($"images/{name}/tickets", content), HttpStatusCode.BadRequest, detailPart);
    }

    [Theory]
    [InlineData("/tickets/0123456789abcdef0123456789abcdef/data", "no such transfer ticket")]
    [InlineData("/tickets/0123456789ABCDEF0123456789ABCDEF/data", "no such transfer ticket")]
    [InlineData("/tickets/short/data", "no such transfer ticket")]
    [InlineData("/tickets/0123456789abcdef0123456789abcdef/data/extents", "no such transfer ticket")]
    [InlineData("/tickets/0123456789abcdef0123456789abcdef/qcow2", "serves /tickets/{id}/data")]
    [InlineData("/tickets/0123456789abcdef0123456789abcdef/data/checksum", "no such transfer ticket")]
    [InlineData("/tickets/0123456789abcdef0123456789abcdef", "serves /tickets/{id}/data")]
    public async Task Unknown_or_malformed_ticket_urls_are_404_problems(string url, string detailPart)
    {
        using var client = Bare();
        await AssertProblemAsync(await client.GetAsync(url), HttpStatusCode.NotFound, detailPart);
    }

    [Fact]
    public async Task A_ticket_for_an_image_that_does_not_exist_is_404()
    {
        using var content = new StringContent("""{"scope":"read"}""", Encoding.UTF8, "application/json");
        await AssertProblemAsync(await fixture.Server.Client.PostAsync("images/no-such-image/tickets", content), HttpStatusCode.NotFound, "no-such-image");
    }

    [Fact]
    public async Task A_fifo_where_the_tickets_folder_belongs_is_a_503_problem_and_images_keep_serving()
    {
        await using var isolated = await ServerProcess.StartAsync();
        string name = "fifo-tickets";
        await isolated.Api.CreateAsync(name, MiB);
        ProcessRunner.RunChecked("mkfifo", [Path.Combine(isolated.StoreDirectory, ".tickets")]);

        using var content = new StringContent("""{"scope":"read"}""", Encoding.UTF8, "application/json");
        var clock = Stopwatch.StartNew();
        using var refused = await isolated.Client.PostAsync($"images/{name}/tickets", content);

        await AssertProblemAsync(refused, HttpStatusCode.ServiceUnavailable, ".tickets is not a directory");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
        using var bare = new HttpClient { BaseAddress = isolated.Client.BaseAddress };
        await AssertProblemAsync(await bare.GetAsync("/tickets/0123456789abcdef0123456789abcdef/data"), HttpStatusCode.NotFound, "no such transfer ticket");
        Assert.Equal(MiB, (await isolated.Api.GetInfoAsync(name)).VirtualSize);
    }

    [Fact]
    public async Task A_ticket_made_on_one_node_works_through_both_and_its_deletion_reaches_the_other_within_a_second()
    {
        await using var cluster = await TwoNodeCluster.StartAsync("tickets", new Dictionary<string, string>());
        const string name = "clustered";
        var first = cluster.Nodes[0];
        await first.Api.CreateAsync(name, 8L * MiB);
        var ticket = await first.Api.CreateTicketAsync(name, "write");
        var owners = new HashSet<string>();
        for (int n = 0; n < 2; n++)
        {
            using var client = new HttpClient { BaseAddress = cluster.Nodes[n].Client.BaseAddress };
            var api = new ImageApi(client).ThroughTicket(ticket.Url);
            var data = Bytes($"node{n}", 65536);
            await api.PutAsync(name, n * MiB, data);
            Assert.Equal(data, await api.GetRangeAsync(name, n * MiB, data.Length));
            using var probe = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, ticket.Url));
            if (probe.Headers.TryGetValues(TwoNodeCluster.NodeHeader, out var node)) owners.Add(node.Single());
        }
        Assert.True(owners.Count <= 1, $"two owners answered: {string.Join(", ", owners)}");

        using (var deleted = await first.Client.DeleteAsync($"images/{name}/tickets/{ticket.Id}"))
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        using var other = new HttpClient { BaseAddress = cluster.Nodes[1].Client.BaseAddress };
        var clock = Stopwatch.StartNew();
        HttpStatusCode status;
        do
        {
            using var response = await other.GetAsync(ticket.Url + "/extents");
            status = response.StatusCode;
            if (status != HttpStatusCode.NotFound) await Task.Delay(50);
        }
        while (status != HttpStatusCode.NotFound && clock.Elapsed < TimeSpan.FromSeconds(5));
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1.5), $"the deleted ticket still worked on the other node for {clock.Elapsed}");
    }

    public void Dispose() => _scratch.Dispose();
}
