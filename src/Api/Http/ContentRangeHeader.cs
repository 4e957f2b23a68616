namespace QcowActors.Api.Http;

/// <summary>
/// A Content-Range on a PUT (RFC 9110 §14.4): "bytes a-b/SIZE" or "bytes a-b/*" (how imageio
/// clients send it). <see cref="CompleteLength"/> is null for "*".
/// </summary>
internal readonly record struct ContentRangeHeader(long First, long Last, long? CompleteLength)
{
    public long Length => Last - First + 1;

    /// <summary>
    /// False with a detail for anything else, including the unsatisfied-range form "bytes */SIZE",
    /// which only a 416 response may carry.
    /// </summary>
    public static bool TryParse(string? value, out ContentRangeHeader range, out string error)
    {
        range = default;
        error = $"Content-Range '{value}' is not 'bytes FIRST-LAST/SIZE' or 'bytes FIRST-LAST/*'";
        if (string.IsNullOrWhiteSpace(value))
            return false;
        ReadOnlySpan<char> s = value.AsSpan().Trim();
        if (!s.StartsWith("bytes ", StringComparison.OrdinalIgnoreCase))
            return false;
        s = s[6..].TrimStart(' ');

        int slash = s.IndexOf('/');
        if (slash < 0)
            return false;
        ReadOnlySpan<char> rangePart = s[..slash];
        ReadOnlySpan<char> completePart = s[(slash + 1)..];
        int dash = rangePart.IndexOf('-');
        if (dash < 0)
            return false;
        if (!TryParseExact(rangePart[..dash], out long first) || !TryParseExact(rangePart[(dash + 1)..], out long last))
            return false;
        if (last < first)
        {
            error = $"Content-Range '{value}' has its last byte before its first";
            return false;
        }

        long? complete = null;
        if (!completePart.SequenceEqual("*"))
        {
            if (!TryParseExact(completePart, out long c))
                return false;
            if (last >= c)
            {
                error = $"Content-Range '{value}' ends past its own complete length";
                return false;
            }
            complete = c;
        }
        range = new ContentRangeHeader(first, last, complete);
        error = "";
        return true;
    }

    /// <summary>1*DIGIT that fits a long: a position we cannot represent is an error, not a clamp.</summary>
    private static bool TryParseExact(ReadOnlySpan<char> digits, out long value)
        => RangeHeader.TryParseDigits(digits, out value) && value != long.MaxValue;
}
