using System.Text.Json;

namespace QcowActors.Testing;

/// <summary>
/// qemu-img / qemu-io, the oracle of the interop tests. Every helper throws with the tool's output on
/// an unexpected exit code, and throws (never skips) when the tools are missing.
/// Read-only commands pass -U (force share) so they also work on an image a running server holds open;
/// only use them on an image after a flush.
/// </summary>
public static class Qemu
{
    public const string QemuImg = "qemu-img";
    public const string QemuIo = "qemu-io";

    /// <summary>qemu-img create -f qcow2 [options] path size; options e.g. "-o", "cluster_size=512,refcount_bits=64".</summary>
    public static void Create(string path, string size, params string[] options)
        => ProcessRunner.RunChecked(QemuImg, ["create", "-q", "-f", "qcow2", .. options, path, size]);

    public static void Create(string path, long size, params string[] options)
        => Create(path, size.ToString(System.Globalization.CultureInfo.InvariantCulture), options);

    /// <summary>qemu-img create with the usual -o options spelled out; null leaves QEMU's default.</summary>
    public static void CreateQcow2(string path, long size, int? clusterSize = null, int? refcountBits = null, string? compat = null)
    {
        var o = new List<string>();
        if (clusterSize is { } cs) o.Add($"cluster_size={cs}");
        if (refcountBits is { } rb) o.Add($"refcount_bits={rb}");
        if (compat is not null) o.Add($"compat={compat}");
        Create(path, size, o.Count == 0 ? [] : ["-o", string.Join(',', o)]);
    }

    /// <summary>
    /// qemu-io -f qcow2 args... path, e.g. Io(path, "-c", "write -P 0xab 0 64k", "-c", "write -z 1M 64k").
    /// qemu-io exits 1 when a command fails; a message with "failed" is treated the same.
    /// </summary>
    public static string Io(string path, params string[] args)
    {
        var result = ProcessRunner.RunChecked(QemuIo, ["-f", "qcow2", .. args, path]);
        if (result.Output.Contains("failed", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException($"qemu-io reported a failure: {result}");
        }
        return result.Stdout;
    }

    /// <summary>Runs each command in one qemu-io process (one -c per command).</summary>
    public static string IoCommands(string path, IEnumerable<string> commands)
        => Io(path, commands.SelectMany(c => new[] { "-c", c }).ToArray());

    /// <summary>qemu-img convert -O raw; with a snapshot name, converts that snapshot (-l snapshot.name=NAME).</summary>
    public static void ConvertToRaw(string source, string destination, string? snapshotName = null)
    {
        List<string> args = ["convert", "-U", "-f", "qcow2", "-O", "raw"];
        if (snapshotName is not null)
        {
            args.AddRange(["-l", $"snapshot.name={snapshotName}"]);
        }
        args.AddRange([source, destination]);
        ProcessRunner.RunChecked(QemuImg, args);
    }

    /// <summary>qemu-img check --output=json: exit 0 clean, 2 corruptions, 3 leaks (anything else throws).</summary>
    public static QemuCheckResult Check(string path)
    {
        var result = ProcessRunner.RunChecked(QemuImg, ["check", "-U", "-f", "qcow2", "--output=json", path], null, 0, 2, 3);
        return QemuCheckResult.Parse(result.ExitCode, result.Stdout, result.Stderr);
    }

    /// <summary>
    /// qemu-img compare -U [extra] a b: exit 0 identical, 1 different (2 and up throw).
    /// extra e.g. "-f", "qcow2", "-F", "raw" to name the formats instead of probing.
    /// </summary>
    public static QemuCompareResult Compare(string a, string b, params string[] extra)
    {
        var result = ProcessRunner.RunChecked(QemuImg, ["compare", "-U", .. extra, a, b], null, 0, 1);
        return new QemuCompareResult(result.ExitCode, result.Output);
    }

    /// <summary>Compares a qcow2 image with a raw file (e.g. a <see cref="DiskModel"/> export).</summary>
    public static QemuCompareResult CompareWithRaw(string qcow2, string raw)
        => Compare(qcow2, raw, "-f", "qcow2", "-F", "raw");

    /// <summary>qemu-img info --output=json (the root object).</summary>
    public static JsonElement Info(string path)
    {
        var result = ProcessRunner.RunChecked(QemuImg, ["info", "-U", "-f", "qcow2", "--output=json", path]);
        using var doc = JsonDocument.Parse(result.Stdout);
        return doc.RootElement.Clone();
    }

    /// <summary>qemu-img snapshot -c NAME path (internal snapshot).</summary>
    public static void Snapshot(string path, string name)
        => ProcessRunner.RunChecked(QemuImg, ["snapshot", "-c", name, path]);

    /// <summary>qemu-img bitmap --add [-g granularity] [--disable] path name.</summary>
    public static void AddBitmap(string path, string name, long? granularity = null, bool disabled = false)
    {
        List<string> args = ["bitmap", "--add", "-f", "qcow2"];
        if (granularity is { } g) args.AddRange(["-g", g.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        if (disabled) args.Add("--disable");
        args.AddRange([path, name]);
        ProcessRunner.RunChecked(QemuImg, args);
    }

    /// <summary>
    /// The dirty ranges of a persistent bitmap as QEMU reads it: qemu-nbd -B exports the image
    /// (started by nbdinfo through socket activation), nbdinfo --map=qemu:dirty-bitmap:NAME lists it.
    /// Throws when QEMU refuses the bitmap (inconsistent, missing).
    /// </summary>
    public static IReadOnlyList<(long Offset, long Length)> DirtyRanges(string path, string bitmap)
    {
        var result = ProcessRunner.RunChecked("nbdinfo", ["--json", $"--map=qemu:dirty-bitmap:{bitmap}", "--", "[", "qemu-nbd", "-r", "-B", bitmap, "-f", "qcow2", path, "]"]);
        using var doc = JsonDocument.Parse(result.Stdout);
        var ranges = new List<(long, long)>();
        foreach (var e in doc.RootElement.EnumerateArray())
            if ((e.GetProperty("type").GetInt64() & 1) != 0) ranges.Add((e.GetProperty("offset").GetInt64(), e.GetProperty("length").GetInt64()));
        return ranges;
    }

    /// <summary>qemu-img map --output=json: the allocation map of the image.</summary>
    public static IReadOnlyList<QemuMapEntry> Map(string path)
    {
        var result = ProcessRunner.RunChecked(QemuImg, ["map", "-U", "-f", "qcow2", "--output=json", path]);
        return JsonSerializer.Deserialize<List<QemuMapEntry>>(result.Stdout)
            ?? throw new InvalidOperationException($"qemu-img map printed no list: {result}");
    }
}
