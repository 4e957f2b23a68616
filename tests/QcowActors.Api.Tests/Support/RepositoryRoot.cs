namespace QcowActors.Api.Tests.Support;

internal static class RepositoryRoot
{
    /// <summary>The directory holding QcowActors.sln, found upwards from the test binaries.</summary>
    public static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "QcowActors.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"QcowActors.sln not found above {AppContext.BaseDirectory}");
    }
}
