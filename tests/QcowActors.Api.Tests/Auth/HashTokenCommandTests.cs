using QcowActors.Api.Auth;
using Xunit;

namespace QcowActors.Api.Tests.Auth;

public sealed class HashTokenCommandTests
{
    private static (int Exit, string Output, string Error) Run(string input, params string[] arguments)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = HashTokenCommand.Run(arguments, new StringReader(input), output, error, interactive: false);
        return (exit, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData(AuthTestTokens.Read)]
    [InlineData(AuthTestTokens.Read + "\n")]
    [InlineData(AuthTestTokens.Read + "\r\n")]
    public void Prints_the_lowercase_sha256_of_the_token_without_its_line_end(string input)
        => Assert.Equal((0, AuthTestTokens.Sha256(AuthTestTokens.Read) + Environment.NewLine, ""), Run(input));

    [Theory]
    [InlineData(AuthTestTokens.Short + "\n", "tokens are at least 32 characters")]
    [InlineData("", "no token on standard input")]
    [InlineData("two words that are long enough to be a token\n", "printable ASCII without spaces")]
    [InlineData("line-one-0123456789012345678901234567890\nline-two\n", "printable ASCII without spaces")]
    public void Refuses_tokens_the_server_would_refuse_or_clients_could_not_send(string input, string reason)
    {
        var (exit, output, error) = Run(input);
        Assert.NotEqual(0, exit);
        Assert.Equal("", output);
        Assert.Contains(reason, error);
        if (input.Trim().Length > 0)
            Assert.DoesNotContain(input.Trim(), error);
    }

    [Fact]
    public void Takes_no_arguments()
        => Assert.Equal(2, Run(AuthTestTokens.Read, "--token", AuthTestTokens.Read).Exit);
}
