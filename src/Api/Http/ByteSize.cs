using System.Globalization;

namespace QcowActors.Api.Http;

/// <summary>
/// Sizes written the way qemu-img takes them: a number of bytes, optionally with a binary suffix
/// K, M, G, T, P or E (powers of 1024, case-insensitive, "KiB"/"GiB" and a trailing "B" accepted).
/// A fraction is allowed ("1.5G") when the result is a whole number of bytes.
/// </summary>
internal static class ByteSize
{
    public static bool TryParse(string? text, out long bytes, out string error)
    {
        bytes = 0;
        string s = text?.Trim() ?? "";
        if (s.Length == 0)
        {
            error = "size is empty";
            return false;
        }

        int numberEnd = 0;
        while (numberEnd < s.Length && (char.IsAsciiDigit(s[numberEnd]) || s[numberEnd] == '.'))
            numberEnd++;
        string number = s[..numberEnd];
        string suffix = s[numberEnd..].Trim();

        if (number.Length == 0 || number.StartsWith('.') || number.EndsWith('.') || number.Count(c => c == '.') > 1)
        {
            error = $"size '{text}' is not a number of bytes with an optional suffix K, M, G, T, P or E (e.g. 10G)";
            return false;
        }
        if (!TryMultiplier(suffix, out long multiplier))
        {
            error = $"size '{text}' has an unknown suffix '{suffix}': use K, M, G, T, P or E (binary, like qemu-img)";
            return false;
        }
        // decimal carries 28 digits: every long times 2^60 that could still fit in a long is exact.
        if (!decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal value))
        {
            error = $"size '{text}' is too large";
            return false;
        }
        decimal total;
        try
        {
            total = value * multiplier;
        }
        catch (OverflowException)
        {
            error = $"size '{text}' is too large";
            return false;
        }
        if (total != decimal.Truncate(total))
        {
            error = $"size '{text}' is not a whole number of bytes";
            return false;
        }
        if (total > long.MaxValue)
        {
            error = $"size '{text}' is too large (at most {long.MaxValue} bytes)";
            return false;
        }
        bytes = (long)total;
        error = "";
        return true;
    }

    private static bool TryMultiplier(string suffix, out long multiplier)
    {
        multiplier = 1;
        if (suffix.Length == 0 || suffix is "b" or "B")
            return true;
        string unit = suffix;
        // "GiB" and "GB"-less forms: qemu-img takes "10G"; people also write "10GiB" and "10gib".
        if (unit.Length == 3 && unit.EndsWith("iB", StringComparison.OrdinalIgnoreCase))
            unit = unit[..1];
        if (unit.Length != 1)
            return false;
        int power = char.ToUpperInvariant(unit[0]) switch
        {
            'K' => 1, 'M' => 2, 'G' => 3, 'T' => 4, 'P' => 5, 'E' => 6, _ => -1,
        };
        if (power < 0)
            return false;
        multiplier = 1L << (10 * power);
        return true;
    }
}
