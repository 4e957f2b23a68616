using Akka.Actor;
using Akka.Configuration;
using QcowActors.Actors.Image;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Actors.Store;

namespace QcowActors.Benchmarks;

/// <summary>
/// The engine as a host wires it, without ASP.NET: an actor system, the store actor on a
/// directory, and <see cref="ImageService"/> in front of it (as EngineTestBase does in the tests).
/// </summary>
internal sealed class Engine : IAsyncDisposable
{
    public const long KiB = 1024;
    public const long MiB = 1024 * KiB;
    public const long GiB = 1024 * MiB;
    /// <summary>Akka log level: WARNING unless QCOW_BENCH_AKKA_LOGLEVEL says otherwise (DEBUG also logs unhandled messages).</summary>
    private static readonly Config Hocon = ConfigurationFactory.ParseString(
        $"akka.loglevel = {Environment.GetEnvironmentVariable("QCOW_BENCH_AKKA_LOGLEVEL") ?? "WARNING"}\n" +
        "akka.stdout-loglevel = WARNING\nakka.actor.debug.unhandled = on\nakka.actor.debug.lifecycle = on");

    private readonly bool _ownsDirectory;

    public Engine(string? directory = null)
    {
        _ownsDirectory = directory is null;
        Directory = Path.GetFullPath(directory ?? Path.Combine(Path.GetTempPath(), "qa-bench-" + Guid.NewGuid().ToString("N")));
        System.IO.Directory.CreateDirectory(Directory);
        var options = new StoreOptions
        {
            Directory = Directory,
            AskTimeout = TimeSpan.FromMinutes(5),
        };
        Actors = ActorSystem.Create("qcow-bench", Hocon);
        var budget = new MetadataBudget(options.MetadataCacheBytesPerImage, options.MetadataCacheBytesTotal);
        Store = Actors.ActorOf(ImageStoreActor.Props(Directory, new DiskFileSystem(), budget, options), "images");
        Service = new ImageService(Store, options);
    }

    public string Directory { get; }
    public ActorSystem Actors { get; }
    public IActorRef Store { get; }
    public ImageService Service { get; }

    public string PathOf(string image) => Path.Combine(Directory, image + ".qcow2");

    /// <summary>
    /// Closes the image (flush, close the file) and opens it again, so its L2 tables start unloaded.
    /// The store holds a FlushImage sent after Passivate until the old incarnation has stopped, then
    /// routes it to a new one. (Not GetInfo: the service answers that from its cached handle while the
    /// old incarnation's gate is still open, and a request inside that gate would then wait on the store
    /// for the close that waits on it.) GetInfo then attaches the new incarnation.
    /// </summary>
    public async Task ReopenAsync(string image)
    {
        Store.Tell(new Passivate(image));
        await Service.FlushAsync(image, CancellationToken.None).ConfigureAwait(false);
        await Service.GetInfoAsync(image, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Writes <paramref name="length"/> bytes of a non-zero pattern from <paramref name="offset"/> in 8 MiB chunks.</summary>
    public async Task FillAsync(string image, long offset, long length)
    {
        var chunk = new byte[8 * MiB];
        new Random(42).NextBytes(chunk);
        for (long done = 0; done < length;)
        {
            int n = (int)Math.Min(chunk.Length, length - done);
            await Service.WriteAsync(image, offset + done, chunk.AsMemory(0, n), CancellationToken.None).ConfigureAwait(false);
            done += n;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Store.Ask<StoreStopped>(new StopAllImages(), TimeSpan.FromMinutes(2)).ConfigureAwait(false);
        }
        finally
        {
            await Actors.Terminate().ConfigureAwait(false);
            if (_ownsDirectory)
            {
                try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
            }
        }
    }

    /// <summary>BenchmarkDotNet setup/cleanup methods are synchronous.</summary>
    public static void Run(Func<Task> action) => action().GetAwaiter().GetResult();
}
