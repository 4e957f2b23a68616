using Microsoft.Extensions.Primitives;

namespace QcowActors.Api.Http;

/// <summary>What a GET should send for a Range header (RFC 9110 §14.2).</summary>
internal enum RangeOutcome
{
    /// <summary>No Range, or one the server must ignore (bad syntax, unknown unit): 200 with the whole disk.</summary>
    Full,
    /// <summary>One satisfiable range: 206 with Content-Range.</summary>
    Partial,
    /// <summary>No range overlaps the disk: 416 with Content-Range: bytes */SIZE.</summary>
    NotSatisfiable,
    /// <summary>More than one range: answered with 416 (the server sends no multipart/byteranges).</summary>
    MultipleRanges,
}

/// <summary>The resolved range: [Offset, Offset+Length) of a disk of <see cref="Size"/> bytes.</summary>
internal readonly record struct RangeResolution(RangeOutcome Outcome, long Offset, long Length, long Size)
{
    public long Last => Offset + Length - 1;

    /// <summary>The Content-Range value for a 206 ("bytes a-b/SIZE") or a 416 ("bytes */SIZE").</summary>
    public string ContentRange => Outcome == RangeOutcome.Partial
        ? $"bytes {Offset}-{Last}/{Size}"
        : $"bytes */{Size}";
}

/// <summary>One range-spec: int-range "a-b" / "a-" (Last null) or suffix-range "-n" (First null).</summary>
internal readonly record struct ByteRangeSpec(long? First, long? Last, long SuffixLength = 0)
{
    public bool IsSuffix => First is null;
}

/// <summary>
/// Parses and resolves a Range request header per RFC 9110 §14.1.2 and §14.2. Numbers too large
/// for a long saturate, which keeps the satisfiability rules right (a huge first-pos is past the end,
/// a huge last-pos is clamped, a huge suffix means the whole disk).
/// </summary>
internal static class RangeHeader
{
    /// <summary>
    /// Syntax only. Null when the value is not a valid "bytes" ranges-specifier: RFC 9110 §14.2 says a
    /// server ignores such a header (an unknown unit, last-pos before first-pos, garbage).
    /// </summary>
    public static IReadOnlyList<ByteRangeSpec>? Parse(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return null;
        ReadOnlySpan<char> s = value.AsSpan().Trim();
        int eq = s.IndexOf('=');
        if (eq < 0 || !s[..eq].Trim().Equals("bytes", StringComparison.OrdinalIgnoreCase))
            return null;

        var specs = new List<ByteRangeSpec>(1);
        foreach (Range part in s[(eq + 1)..].Split(','))
        {
            ReadOnlySpan<char> element = s[(eq + 1)..][part].Trim(" \t");
            // RFC 9110 §5.6.1.2: a recipient accepts and ignores empty list elements ("bytes=0-1,").
            if (element.IsEmpty)
                continue;
            if (!TryParseSpec(element, out ByteRangeSpec spec))
                return null;
            specs.Add(spec);
        }
        return specs.Count == 0 ? null : specs;
    }

    /// <summary>Decides what to send for the (possibly absent, possibly repeated) Range header.</summary>
    public static RangeResolution Resolve(StringValues header, long size)
    {
        // Range is a singleton field; several field lines join into one list (RFC 9110 §5.3).
        IReadOnlyList<ByteRangeSpec>? specs = header.Count switch
        {
            0 => null,
            1 => Parse(header[0]),
            _ => Parse(string.Join(',', header.ToArray())),
        };
        return Resolve(specs, size);
    }

    public static RangeResolution Resolve(IReadOnlyList<ByteRangeSpec>? specs, long size)
    {
        var full = new RangeResolution(RangeOutcome.Full, 0, size, size);
        if (specs is null || specs.Count == 0)
            return full;
        if (specs.Count > 1)
            return new RangeResolution(RangeOutcome.MultipleRanges, 0, 0, size);

        ByteRangeSpec spec = specs[0];
        if (spec.IsSuffix)
        {
            if (spec.SuffixLength == 0)
                return new RangeResolution(RangeOutcome.NotSatisfiable, 0, 0, size);
            // A non-empty suffix of an empty disk is satisfiable but has no a-b form: ignore the Range.
            if (size == 0)
                return full;
            long length = Math.Min(spec.SuffixLength, size);
            return new RangeResolution(RangeOutcome.Partial, size - length, length, size);
        }

        long first = spec.First!.Value;
        if (first >= size)
            return new RangeResolution(RangeOutcome.NotSatisfiable, 0, 0, size);
        long last = Math.Min(spec.Last ?? long.MaxValue, size - 1);
        return new RangeResolution(RangeOutcome.Partial, first, last - first + 1, size);
    }

    private static bool TryParseSpec(ReadOnlySpan<char> element, out ByteRangeSpec spec)
    {
        spec = default;
        int dash = element.IndexOf('-');
        if (dash < 0)
            return false;
        ReadOnlySpan<char> left = element[..dash];
        ReadOnlySpan<char> right = element[(dash + 1)..];

        if (left.IsEmpty)
        {
            if (!TryParseDigits(right, out long suffix))
                return false;
            spec = new ByteRangeSpec(null, null, suffix);
            return true;
        }
        if (!TryParseDigits(left, out long first))
            return false;
        if (right.IsEmpty)
        {
            spec = new ByteRangeSpec(first, null);
            return true;
        }
        if (!TryParseDigits(right, out long last) || last < first)
            return false;
        spec = new ByteRangeSpec(first, last);
        return true;
    }

    /// <summary>1*DIGIT, saturating at long.MaxValue.</summary>
    internal static bool TryParseDigits(ReadOnlySpan<char> digits, out long value)
    {
        value = 0;
        if (digits.IsEmpty)
            return false;
        foreach (char c in digits)
        {
            if (!char.IsAsciiDigit(c))
                return false;
            int d = c - '0';
            value = value > (long.MaxValue - d) / 10 ? long.MaxValue : value * 10 + d;
        }
        return true;
    }
}
