using System.Globalization;

namespace QcowActors.Format;

/// <summary>Human-readable binary sizes for error messages ("64 TiB", "8 KiB", "1.5 GiB").</summary>
internal static class ByteSize
{
    private const int UnitShift = 10;
    private static readonly string[] Units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

    public static string Format(ulong bytes)
    {
        int unit = 0;
        while (unit < Units.Length - 1 && bytes >> (UnitShift * (unit + 1)) != 0)
            unit++;
        if (unit == 0)
            return string.Create(CultureInfo.InvariantCulture, $"{bytes} bytes");
        ulong whole = bytes >> (UnitShift * unit);
        ulong rest = bytes & ((1UL << (UnitShift * unit)) - 1);
        if (rest == 0)
            return string.Create(CultureInfo.InvariantCulture, $"{whole} {Units[unit]}");
        double value = bytes / (double)(1UL << (UnitShift * unit));
        return string.Create(CultureInfo.InvariantCulture, $"{value:0.##} {Units[unit]}");
    }

    public static string Format(long bytes) => bytes < 0
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes} bytes")
        : Format((ulong)bytes);
}
