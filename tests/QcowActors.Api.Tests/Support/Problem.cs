using System.Net;
using System.Text.Json;
using Xunit;

namespace QcowActors.Api.Tests.Support;

/// <summary>Assertions on RFC 9457 problem responses.</summary>
internal static class Problem
{
    /// <summary>Asserts status, media type and the four members; returns the body for further checks.</summary>
    public static async Task<JsonElement> AssertAsync(HttpResponseMessage response, HttpStatusCode status, string? detailContains = null)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        JsonElement problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("type").GetString()), body);
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("title").GetString()), body);
        string detail = problem.GetProperty("detail").GetString() ?? "";
        Assert.False(string.IsNullOrEmpty(detail), body);
        if (detailContains is not null)
            Assert.Contains(detailContains, detail, StringComparison.OrdinalIgnoreCase);
        return problem;
    }
}
