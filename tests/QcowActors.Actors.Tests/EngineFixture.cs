using System.Diagnostics;
using System.Buffers;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using QcowActors.Actors.Image;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Actors.Store;

namespace QcowActors.Actors.Tests;

/// <summary>An actor system with a store on a temp directory and the service in front of it.</summary>
public abstract class EngineTestBase : TestKit, IDisposable
{
    protected EngineTestBase(IImageFileSystem? fs = null, MetadataBudget? budget = null, Action<StoreOptions>? configure = null)
        : base("akka.loglevel = DEBUG\nakka.actor.debug.unhandled = on")
    {
        StoreDirectory = Path.Combine(Path.GetTempPath(), "qa-actors-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(StoreDirectory);
        FileSystem = fs ?? new DiskFileSystem();
        Options = new StoreOptions { Directory = StoreDirectory, AskTimeout = TimeSpan.FromSeconds(10) };
        configure?.Invoke(Options);
        Budget = budget ?? new MetadataBudget(Options.MetadataCacheBytesPerImage, Options.MetadataCacheBytesTotal);
        Store = Sys.ActorOf(ImageStoreActor.Props(StoreDirectory, FileSystem, Budget, Options), "images");
        Service = new ImageService(Store, Options);
    }

    protected StoreOptions Options { get; }
    protected MetadataBudget Budget { get; }

    protected string StoreDirectory { get; }
    protected IImageFileSystem FileSystem { get; }
    protected IActorRef Store { get; }
    protected ImageService Service { get; }

    protected string ImagePath(string name) => Path.Combine(StoreDirectory, name + ".qcow2");

    /// <summary>Samples the budget's reserved bytes every millisecond until disposed; <see cref="BudgetPeak.Peak"/> is the highest seen.</summary>
    protected BudgetPeak SampleBudget() => new(Budget);

    protected sealed class BudgetPeak : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _sampler;
        private long _peak;

        public BudgetPeak(MetadataBudget budget)
        {
            _sampler = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    Interlocked.Exchange(ref _peak, Math.Max(Interlocked.Read(ref _peak), budget.UsedBytes));
                    await Task.Delay(1);
                }
            });
        }

        public long Peak => Interlocked.Read(ref _peak);

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            await _sampler;
            _stop.Dispose();
        }
    }

    protected Task<byte[]> ReadAsync(string name, long offset, int length) => ReadAsync(Service, name, offset, length);

    protected static async Task<byte[]> ReadAsync(ImageService service, string name, long offset, int length)
    {
        await using var plan = await service.PlanReadAsync(name, offset, length, CancellationToken.None);
        var pipe = new System.IO.Pipelines.Pipe(new System.IO.Pipelines.PipeOptions(pauseWriterThreshold: 0));
        await plan.CopyToAsync(pipe.Writer, CancellationToken.None);
        await pipe.Writer.CompleteAsync();
        var result = await pipe.Reader.ReadAtLeastAsync(length);
        var bytes = result.Buffer.Slice(0, length).ToArray();
        pipe.Reader.AdvanceTo(result.Buffer.End);
        return bytes;
    }

    /// <summary>Runs qemu-img check and returns (exit code, output).</summary>
    protected static (int Exit, string Output) QemuCheck(string path)
    {
        var psi = new ProcessStartInfo("qemu-img") { RedirectStandardOutput = true, RedirectStandardError = true };
        // -U: the engine in this process may hold the image (and QEMU's locks on it), as a server would.
        foreach (var a in new[] { "check", "-U", "--output=json", path }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }

    protected static void Qemu(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{tool} {string.Join(' ', args)} failed: {output}");
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        try { Directory.Delete(StoreDirectory, recursive: true); } catch (IOException) { }
    }
}
