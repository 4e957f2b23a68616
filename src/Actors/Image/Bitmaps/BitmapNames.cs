using System.Text;
using QcowActors.Format;

namespace QcowActors.Actors.Image.Bitmaps;

/// <summary>What the API accepts as a new bitmap's name and granularity.</summary>
public static class BitmapNames
{
    public const long DefaultGranularity = 64 * 1024;
    public const long MinGranularity = 4096;
    public const long MaxGranularity = 2 * 1024 * 1024;

    /// <summary>
    /// 1..1023 bytes of UTF-8 (QEMU's limit) without control characters or '/', so that every
    /// name is one path segment of <c>/images/{name}/bitmaps/{bitmap}</c>. Null when valid.
    /// </summary>
    public static string? Validate(string name)
    {
        if (name.Length == 0) return "the bitmap name is empty";
        int bytes = Encoding.UTF8.GetByteCount(name);
        if (bytes > BitmapLimits.MaxNameSize) return $"the bitmap name is {bytes} bytes of UTF-8; at most {BitmapLimits.MaxNameSize} are allowed";
        foreach (char c in name)
        {
            if (char.IsControl(c)) return "the bitmap name contains a control character";
            if (c == '/') return "the bitmap name contains '/', which cannot be one path segment";
        }
        if (name.Any(char.IsSurrogate) && !IsWellFormed(name)) return "the bitmap name is not valid UTF-16 (a lone surrogate)";
        return null;
    }

    /// <summary>The granularity's log2 when it is a power of two from 4 KiB to 2 MiB; else an error.</summary>
    public static (int Bits, string? Error) Granularity(long granularity)
    {
        if (granularity < MinGranularity || granularity > MaxGranularity || (granularity & (granularity - 1)) != 0)
            return (0, $"granularity {granularity} is not a power of two from {MinGranularity} (4 KiB) to {MaxGranularity} (2 MiB)");
        return (System.Numerics.BitOperations.Log2((ulong)granularity), null);
    }

    private static bool IsWellFormed(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) i++;
            else if (char.IsSurrogate(s[i])) return false;
        }
        return true;
    }
}
