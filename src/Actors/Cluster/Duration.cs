using System.Globalization;

namespace QcowActors.Actors.Cluster;

/// <summary>Durations as operators write them in HOCON and Kubernetes: "5s", "500ms", "2m", "1h", or .NET's 00:00:05.</summary>
public static class Duration
{
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        if (string.IsNullOrWhiteSpace(text)) return false;
        text = text.Trim();
        (string suffix, double ms)[] units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)];
        foreach (var (suffix, ms) in units)
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)
                && double.TryParse(text[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out double n)
                && !(suffix == "m" && text.EndsWith("ms", StringComparison.OrdinalIgnoreCase)))
            {
                // "1e300h" or "NaNs" parse as numbers but are no duration.
                if (!double.IsFinite(n * ms) || Math.Abs(n * ms) >= TimeSpan.MaxValue.TotalMilliseconds) return false;
                value = TimeSpan.FromMilliseconds(n * ms);
                return true;
            }
        }
        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out value);
    }
}
