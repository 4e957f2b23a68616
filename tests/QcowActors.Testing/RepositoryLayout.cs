using System.Reflection;

namespace QcowActors.Testing;

/// <summary>Where the repository and the server build live, seen from a test assembly.</summary>
public static class RepositoryLayout
{
    /// <summary>Overrides the server entry assembly (e.g. to run the suites against another build).</summary>
    public const string ServerDllVariable = "QCOWACTORS_SERVER_DLL";

    private static readonly Lazy<string> LazyRoot = new(FindRoot);

    /// <summary>The folder holding QcowActors.sln, found by walking up from the test's base directory.</summary>
    public static string Root => LazyRoot.Value;

    /// <summary>
    /// The configuration this library was built with. The test projects and src/Api are built in one
    /// `dotnet build -c X`, so the server to start is the one under bin/X.
    /// </summary>
    public static string BuildConfiguration { get; } =
        typeof(RepositoryLayout).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration is { Length: > 0 } c
            ? c
            : "Debug";

    public static string ReadmePath => Path.Combine(Root, "README.md");

    /// <summary>src/Api/bin/{Configuration}/net10.0/QcowActors.Api.dll, or the override from <see cref="ServerDllVariable"/>.</summary>
    public static string ServerDll
    {
        get
        {
            var overridden = Environment.GetEnvironmentVariable(ServerDllVariable);
            var path = string.IsNullOrEmpty(overridden)
                ? Path.Combine(Root, "src", "Api", "bin", BuildConfiguration, "net10.0", "QcowActors.Api.dll")
                : Path.GetFullPath(overridden);
            if (!File.Exists(path))
            {
                throw new FileNotFoundException(
                    $"The server build is missing: {path}. Build it first (dotnet build QcowActors.sln -c {BuildConfiguration}).",
                    path);
            }
            return path;
        }
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "QcowActors.sln")))
            {
                return dir.FullName;
            }
        }
        throw new DirectoryNotFoundException($"No QcowActors.sln above {AppContext.BaseDirectory}.");
    }
}
