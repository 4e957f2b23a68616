using QcowActors.Testing;
using Xunit;

namespace QcowActors.EndToEnd.Tests;

/// <summary>Assertions that compare a served disk or an image file with the model.</summary>
internal static class DiskAssert
{
    private const int Chunk = 16 * 1024 * 1024;

    /// <summary>Reads the whole disk through Range GETs of 16 MiB and compares every byte with the model.</summary>
    public static async Task ServedDiskMatchesAsync(ImageApi api, string name, DiskModel model)
    {
        for (long offset = 0; offset < model.Size; offset += Chunk)
        {
            var length = (int)Math.Min(Chunk, model.Size - offset);
            var actual = await api.GetRangeAsync(name, offset, length);
            Assert.True(model.Describe(offset, actual) is null, $"{name}: {model.Describe(offset, actual)}");
        }
    }

    /// <summary>qemu-img check exits 0 (no corruptions, no leaks, no check errors).</summary>
    public static void CheckIsClean(string imagePath)
    {
        var check = Qemu.Check(imagePath);
        Assert.True(check.IsClean, $"{imagePath}: {check}");
    }

    /// <summary>qemu-img compare of the image file with the model exported as raw says identical.</summary>
    public static void FileMatchesModel(string imagePath, DiskModel model, TempDirectory scratch)
    {
        var raw = model.ExportRaw(scratch.File($"{Path.GetFileNameWithoutExtension(imagePath)}-model-{Guid.NewGuid():N}.raw"));
        try
        {
            var compare = Qemu.CompareWithRaw(imagePath, raw);
            Assert.True(compare.Identical, $"{imagePath} vs model: {compare}");
        }
        finally
        {
            File.Delete(raw);
        }
    }
}
