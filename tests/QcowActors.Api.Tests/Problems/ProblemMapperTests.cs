using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using QcowActors.Actors.Service;
using QcowActors.Api.Problems;
using QcowActors.Format;
using Xunit;

namespace QcowActors.Api.Tests.Problems;

/// <summary>
/// The one mapping from engine and format errors to statuses, for every value (the HTTP tests in
/// <see cref="Http.EngineErrorTests"/> produce the reachable ones with the real engine).
/// </summary>
public sealed class ProblemMapperTests
{
    private static readonly Dictionary<ImageError, int> ImageErrorStatus = new()
    {
        [ImageError.InvalidArgument] = 400,
        [ImageError.LimitExceeded] = 400,
        [ImageError.NotFound] = 404,
        [ImageError.AlreadyExists] = 409,
        [ImageError.Conflict] = 409,
        [ImageError.OutOfRange] = 416,
        [ImageError.Unsupported] = 422,
        [ImageError.DiskFull] = 507,
        [ImageError.Unavailable] = 503,
    };

    private static readonly Dictionary<QcowProblem, int> QcowProblemStatus = new()
    {
        [QcowProblem.Invalid] = 422,
        [QcowProblem.Unsupported] = 422,
        [QcowProblem.LimitExceeded] = 400,
    };

    public static TheoryData<ImageError> ImageErrors() => [.. Enum.GetValues<ImageError>()];

    public static TheoryData<QcowProblem> QcowProblems() => [.. Enum.GetValues<QcowProblem>()];

    [Theory]
    [MemberData(nameof(ImageErrors))]
    public void Every_engine_error_is_a_problem_with_the_status_a_client_can_act_on(ImageError error)
    {
        Assert.True(ImageErrorStatus.TryGetValue(error, out int status), $"no status decided for ImageError.{error}: add it to this table");
        ProblemDetails problem = Assert.IsType<ProblemDetails>(ProblemMapper.TryMap(new ImageException(error, $"engine says {error}")));

        Assert.Equal(status, ProblemMapper.StatusFor(error));
        Assert.Equal(status, problem.Status);
        Assert.Equal($"engine says {error}", problem.Detail);
        Assert.StartsWith("https://", problem.Type);
        Assert.False(string.IsNullOrEmpty(problem.Title));
        Assert.False(problem.Extensions.ContainsKey("feature"));
    }

    [Theory]
    [MemberData(nameof(QcowProblems))]
    public void Every_format_error_that_escapes_the_engine_is_a_problem_naming_the_field(QcowProblem kind)
    {
        Assert.True(QcowProblemStatus.TryGetValue(kind, out int status), $"no status decided for QcowProblem.{kind}: add it to this table");
        var error = new QcowFormatException(kind, "l1_size", "l1_size 2147483647 exceeds the 32 MiB limit");
        ProblemDetails problem = Assert.IsType<ProblemDetails>(ProblemMapper.TryMap(error));

        Assert.Equal(status, ProblemMapper.StatusFor(kind));
        Assert.Equal(status, problem.Status);
        Assert.Equal("l1_size", problem.Extensions["field"]);
        Assert.Contains("l1_size", problem.Detail);
        Assert.StartsWith("https://", problem.Type);
    }

    [Fact]
    public void Unsupported_feature_is_named_in_the_problem()
    {
        var error = new ImageException(ImageError.Unsupported, "the cluster at 0 cannot be inflated", "compressed clusters");
        ProblemDetails problem = Assert.IsType<ProblemDetails>(ProblemMapper.TryMap(error));
        Assert.Equal(422, problem.Status);
        Assert.Equal("compressed clusters", problem.Extensions["feature"]);

        var format = new QcowFormatException(QcowProblem.Unsupported, "incompatible_features", "extended L2 entries", "subclusters");
        Assert.Equal("subclusters", ProblemMapper.TryMap(format)!.Extensions["feature"]);
    }

    [Theory]
    [InlineData(400)]
    [InlineData(408)]
    [InlineData(413)]
    public void Kestrels_verdict_on_a_request_body_keeps_its_status(int status)
    {
        ProblemDetails problem = Assert.IsType<ProblemDetails>(ProblemMapper.TryMap(new BadHttpRequestException("bad body", status)));
        Assert.Equal(status, problem.Status);
        Assert.Equal("bad body", problem.Detail);
    }

    [Fact]
    public void Other_exceptions_are_not_mapped_so_they_stay_500_without_their_message()
    {
        Assert.Null(ProblemMapper.TryMap(new InvalidOperationException("secret internal state")));
        Assert.Null(ProblemMapper.TryMap(new IOException("disk gone")));
        Assert.Equal(500, ProblemMapper.StatusFor((ImageError)999));
        Assert.Equal(500, ProblemMapper.StatusFor((QcowProblem)999));
    }
}
