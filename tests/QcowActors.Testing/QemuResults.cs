using System.Text.Json;
using System.Text.Json.Serialization;

namespace QcowActors.Testing;

/// <summary>qemu-img check --output=json. The JSON omits "corruptions" and "leaks" when they are 0.</summary>
public sealed record QemuCheckResult(int ExitCode, long Corruptions, long Leaks, long CheckErrors, string RawJson)
{
    /// <summary>What the interop tests require: exit code 0.</summary>
    public bool IsClean => ExitCode == 0;

    public static QemuCheckResult Parse(int exitCode, string json, string stderr = "")
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        long Field(string name) => root.TryGetProperty(name, out var v) ? v.GetInt64() : 0;
        var raw = stderr.Length == 0 ? json : $"{json}{Environment.NewLine}{stderr}";
        return new QemuCheckResult(exitCode, Field("corruptions"), Field("leaks"), Field("check-errors"), raw);
    }

    public override string ToString()
        => $"qemu-img check exit {ExitCode}: corruptions {Corruptions}, leaks {Leaks}, check-errors {CheckErrors}{Environment.NewLine}{RawJson}";
}

/// <summary>qemu-img compare: 0 identical, 1 different; Output says where they first differ.</summary>
public sealed record QemuCompareResult(int ExitCode, string Output)
{
    public bool Identical => ExitCode == 0;

    public override string ToString() => $"qemu-img compare exit {ExitCode}: {Output}";
}

/// <summary>One entry of qemu-img map --output=json.</summary>
public sealed record QemuMapEntry(
    [property: JsonPropertyName("start")] long Start,
    [property: JsonPropertyName("length")] long Length,
    [property: JsonPropertyName("depth")] int Depth,
    [property: JsonPropertyName("present")] bool Present,
    [property: JsonPropertyName("zero")] bool Zero,
    [property: JsonPropertyName("data")] bool Data,
    [property: JsonPropertyName("offset")] long? Offset);
