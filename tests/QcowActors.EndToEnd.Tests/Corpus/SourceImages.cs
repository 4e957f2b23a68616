using QcowActors.Testing;

namespace QcowActors.EndToEnd.Tests.Corpus;

/// <summary>
/// The valid images every corpus case starts from, made by qemu-img and filled by qemu-io (the same
/// commands every run, so the bytes and thus the cases are deterministic for one QEMU version).
/// </summary>
internal static class SourceImages
{
    public const long DiskSize = 64L << 20;
    public const string V3 = "v3";
    public const string V2 = "v2";
    public const string ExtendedL2 = "xl2";
    public const string Snapshots = "snap";
    public const string Compressed = "comp";
    public const string Overlay = "ovl";
    public const string Base = "base";

    /// <summary>The name the overlay's header records; the test keeps a good copy of the base under it in the store.</summary>
    public const string BaseFileName = "corpus-base.qcow2";

    // Data in the first cluster (cluster 0, what the first 64 KiB read and the 4 KiB PUT touch), at 1 MiB
    // (what PATCH zero hits), a zero cluster, and data at mid-disk (the 4 KiB read at 32 MiB).
    private static readonly string[] Data =
    [
        "write -P 0x11 0 128k", "write -P 0x22 1M 64k", "write -P 0x33 32M 4k", "write -P 0x44 60M 64k",
    ];

    /// <summary>Builds every source image in <paramref name="directory"/>; returns name → bytes.</summary>
    public static IReadOnlyDictionary<string, byte[]> Build(string directory)
    {
        string P(string name) => Path.Combine(directory, name + ".qcow2");

        Qemu.Create(P(V3), DiskSize, "-o", "cluster_size=65536");
        // A zero cluster without a host cluster (2 MiB) and one that keeps its host cluster (3 MiB).
        Qemu.IoCommands(P(V3), [.. Data, "write -z 2M 64k", "write -P 0x55 3M 64k", "write -z 3M 64k"]);

        Qemu.Create(P(V2), DiskSize, "-o", "compat=0.10,cluster_size=65536");
        Qemu.IoCommands(P(V2), Data);

        Qemu.Create(P(ExtendedL2), DiskSize, "-o", "extended_l2=on,cluster_size=65536");
        Qemu.IoCommands(P(ExtendedL2), ["write -P 0x11 0 4k", "write -P 0x22 1M 64k", "write -z 2M 8k", "write -P 0x33 32M 4k", "write -P 0x44 60M 6k"]);

        Qemu.Create(P(Snapshots), DiskSize, "-o", "cluster_size=65536");
        Qemu.IoCommands(P(Snapshots), Data);
        Qemu.Snapshot(P(Snapshots), "s1");
        Qemu.IoCommands(P(Snapshots), ["write -P 0x66 0 64k", "write -P 0x77 5M 64k"]);
        Qemu.Snapshot(P(Snapshots), "s2");
        Qemu.IoCommands(P(Snapshots), ["write -P 0x88 32M 4k"]);

        var plain = Path.Combine(directory, "comp-src.qcow2");
        Qemu.Create(plain, DiskSize, "-o", "cluster_size=65536");
        Qemu.IoCommands(plain, [.. Data, "write -P 0x99 8M 256k"]);
        ProcessRunner.RunChecked(Qemu.QemuImg, ["convert", "-c", "-f", "qcow2", "-O", "qcow2", plain, P(Compressed)]);

        Qemu.Create(Path.Combine(directory, BaseFileName), DiskSize, "-o", "cluster_size=65536");
        Qemu.IoCommands(Path.Combine(directory, BaseFileName), Data);
        File.Copy(Path.Combine(directory, BaseFileName), P(Base));
        // The overlay leaves guest 0 and 32 MiB to the base, so the reads reach a damaged base.
        Qemu.Create(P(Overlay), DiskSize, "-o", "cluster_size=65536", "-b", BaseFileName, "-F", "qcow2");
        Qemu.IoCommands(P(Overlay), ["write -P 0xa1 128k 4k", "write -P 0xa2 40M 64k"]);

        return new[] { V3, V2, ExtendedL2, Snapshots, Compressed, Overlay, Base }.ToDictionary(n => n, n => File.ReadAllBytes(P(n)));
    }
}
