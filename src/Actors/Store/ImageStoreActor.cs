using Akka.Actor;
using QcowActors.Actors.Backing;
using QcowActors.Actors.Image;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Store;

/// <summary>
/// The node's store: one supervisor per open image, started on the first request naming an image
/// that exists (a name that does not leaves nothing behind). While an image closes, messages for
/// it wait here and go to its next incarnation. At most <c>Storage:MaxOpenImages</c> stay open:
/// beyond it the least recently used idle one is closed. When an image is idle is not decided
/// here but by its owner entity (<see cref="Cluster.ImageOwnership"/>), which closes it through
/// <see cref="ReleaseLocalImage"/>.
/// </summary>
public sealed class ImageStoreActor : ReceiveActor
{
    private readonly string _directory;
    private readonly IImageFileSystem _fs;
    private readonly MetadataBudget _budget;
    private readonly StoreOptions _options;
    private readonly BackingChains _chains;
    private readonly Dictionary<string, IActorRef> _open = [];
    private readonly Dictionary<IActorRef, string> _names = [];
    /// <summary>When each open image was last attached here (for images no entity tracks: a store on its own).</summary>
    private readonly Dictionary<string, long> _lastAttached = [];
    /// <summary>Images asked to close; they keep getting their messages until they are ready to stop.</summary>
    private readonly HashSet<string> _closeRequested = [];
    /// <summary>Images stopping (or files being deleted), with the messages that arrived meanwhile.</summary>
    private readonly Dictionary<string, List<(object Message, IActorRef Sender)>> _closing = [];
    private readonly Dictionary<string, IActorRef> _deleteRequests = [];
    private readonly HashSet<string> _creating = [];
    /// <summary>Who waits for an image to be closed by <see cref="ReleaseLocalImage"/>.</summary>
    private readonly Dictionary<string, List<IActorRef>> _releaseRequests = [];
    private readonly Cluster.ImageOwnership? _ownership;
    private IActorRef? _stopAllRequester;
    /// <summary>Snapshot and resize operations per image, in arrival order; the first runs once the image is closed.</summary>
    private readonly Dictionary<string, Queue<(RunMaintenance Message, IActorRef Sender)>> _maintenance = [];

    private sealed record Created(string Image, IActorRef ReplyTo, object Result);
    private sealed record MaintenanceDone(string Image, IActorRef ReplyTo, object Result);
    private sealed record Deleted(string Image, IActorRef ReplyTo, Exception? Error);
    /// <summary>The store entry of an image not open here was checked (off this actor's thread): null, it may be opened.</summary>
    private sealed record Probed(string Image, Exception? Refusal);

    /// <param name="ownership">Images this node may open (cluster); null: every image (a store on its own, in tests).</param>
    /// <param name="chains">The node's backing disks (shared with the service's raw reads); null: the store's own.</param>
    public ImageStoreActor(string directory, IImageFileSystem fs, MetadataBudget budget, StoreOptions options, Cluster.ImageOwnership? ownership = null,
        BackingChains? chains = null)
    {
        _ownership = ownership;
        _chains = chains ?? new BackingChains(directory, fs);
        var self = Self;
        _chains.ReleaseLocalWriter ??= name => self.Ask<LocalImageReleased>(new ReleaseLocalImage(name), options.AskTimeout);
        _budget = budget;
        _options = options;
        _directory = directory;
        _fs = fs;
        Directory.CreateDirectory(directory);

        Receive<CreateImage>(Create);
        Receive<Created>(c =>
        {
            _creating.Remove(c.Image);
            c.ReplyTo.Tell(c.Result);
        });
        Receive<ListImages>(_ => OffThread(() => StoreListing.ListAsync(_directory), "list the images").PipeTo(Sender));
        Receive<DeleteImage>(Delete);
        Receive<Deleted>(d =>
        {
            d.ReplyTo.Tell(d.Error is null ? new ImageDeleted(d.Image) : new Status.Failure(d.Error));
            Replay(d.Image);
        });
        Receive<Probed>(OnProbed);
        Receive<Passivate>(p => BeginClose(p.Image));
        Receive<ReleaseLocalImage>(r =>
        {
            if (!_open.ContainsKey(r.Image))
            {
                Sender.Tell(new LocalImageReleased(r.Image));
                return;
            }
            if (!_releaseRequests.TryGetValue(r.Image, out var waiting)) _releaseRequests[r.Image] = waiting = [];
            waiting.Add(Sender);
            BeginClose(r.Image);
        });
        Receive<ImageReadyToStop>(r =>
        {
            if (!_open.TryGetValue(r.Image, out var image)) return;
            _closing.TryAdd(r.Image, []); // from now on messages for it wait for the next incarnation
            image.Tell(new StopNow());
        });
        Receive<Terminated>(t => OnTerminated(t.ActorRef));
        Receive<StopAllImages>(_ =>
        {
            _stopAllRequester = Sender;
            foreach (var name in _open.Keys.ToList()) BeginClose(name);
            ReplyIfStopped();
        });
        Receive<GetStoreState>(_ => Sender.Tell(new StoreState(_open.Count, _closing.Count)));
        Receive<RunMaintenance>(Maintain);
        Receive<MaintenanceDone>(OnMaintenanceDone);
        Receive<IImageMessage>(Route);
    }

    /// <summary>An image supervisor that fails is stopped, not restarted: the next request reopens (and repairs) the file.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    public static Props Props(string directory, IImageFileSystem fs, MetadataBudget budget, StoreOptions options, Cluster.ImageOwnership? ownership = null,
        BackingChains? chains = null)
        => Akka.Actor.Props.Create(() => new ImageStoreActor(directory, fs, budget, options, ownership, chains));

    private string PathOf(string name) => ImageNames.PathFor(_directory, name);

    /// <summary>
    /// File system calls of the store run on the thread pool, never on this actor's thread, and are
    /// waited for at most <c>Storage:FileSystemWaitLimit</c>: a store on a file system that stops
    /// answering (a hung NFS mount) gets 503s while other images keep being served.
    /// </summary>
    private async Task<T> OffThread<T>(Func<Task<T>> call, string what)
    {
        var limit = _options.FileSystemWaitLimit;
        var work = Task.Run(call);
        try
        {
            return await work.WaitAsync(limit).ConfigureAwait(false);
        }
        catch (TimeoutException) when (!work.IsCompleted)
        {
            throw new ImageException(ImageError.Unavailable,
                $"the store's file system did not answer within {limit.TotalSeconds:0} s (Storage:FileSystemWaitLimit) to {what}; try again");
        }
    }

    /// <summary>
    /// Why the image may not be opened, or null: existence first (a request for a name that does not
    /// exist starts nothing), then this node's right to open it. lstat only: a FIFO or a link out
    /// of the store is refused before anything opens it.
    /// </summary>
    private static ImageException? WhyNotOpen(string directory, string name, Cluster.ImageOwnership? ownership)
    {
        string path = ImageNames.PathFor(directory, name);
        if (FileKind.NotAnImage(FileKind.Of(path)) is { } notAnImage)
            return new ImageException(ImageError.Unsupported, $"image '{name}': its file {notAnImage}", "not a regular file");
        if (!File.Exists(path))
            return ImageNames.RawImagePath(directory, name) is { } raw
                ? FileKind.NotAnImage(FileKind.Of(raw)) is { } why
                    ? new ImageException(ImageError.Unsupported, $"image '{name}': its file {Path.GetFileName(raw)} {why}", "not a regular file")
                    : RawReadOnly(name)
                : new ImageException(ImageError.NotFound, $"image '{name}' does not exist");
        return WhyNotOwned(name, ownership);
    }

    private ImageException? WhyNotOwned(string name) => WhyNotOwned(name, _ownership);

    private static ImageException? WhyNotOwned(string name, Cluster.ImageOwnership? ownership)
        => ownership is not null && !ownership.MayOpen(name)
            ? new ImageException(ImageError.Unavailable, $"image '{name}' is not served by this node right now (it is moving to another node); try again")
            : null;

    internal static ImageException RawReadOnly(string name)
        => new(ImageError.Conflict, $"image '{name}' is a raw image ({name}{ImageNames.RawExtension}): the server serves raw images read-only "
            + "(GET of its data, and as a backing image); qemu-img convert -O qcow2 makes a writable copy", "raw image");

    /// <summary>Answers a message for an invalid name with 400 (the name never reaches the file system).</summary>
    private bool RefusedName(string name)
    {
        if (ImageNames.IsValid(name)) return false;
        Sender.Tell(new Status.Failure(new ImageException(ImageError.InvalidArgument, $"'{name}' is not a valid image name")));
        return true;
    }

    private void Route(IImageMessage message)
    {
        string name = message.Image;
        if (RefusedName(name)) return;
        if (_closing.TryGetValue(name, out var waiting))
        {
            waiting.Add((message, Sender));
            return;
        }
        if (!_open.TryGetValue(name, out var image))
        {
            // Messages wait while the entry is checked; they go to the new supervisor in arrival order.
            _closing[name] = [(message, Sender)];
            string directory = _directory;
            var ownership = _ownership;
            OffThread(() => Task.FromResult(WhyNotOpen(directory, name, ownership)), $"open image '{name}'")
                .PipeTo(Self, success: refusal => new Probed(name, refusal),
                    failure: e => new Probed(name, e is AggregateException { InnerException: { } inner } ? inner : e));
            return;
        }
        ForwardTo(image, name, message, Sender);
    }

    private void ForwardTo(IActorRef image, string name, object message, IActorRef sender)
    {
        if (message is AttachImage) _lastAttached[name] = Environment.TickCount64;
        image.Tell(message, sender);
    }

    private void OnProbed(Probed p)
    {
        string name = p.Image;
        if (!_closing.Remove(name, out var waiting)) return;
        // Ownership again, here: it may have moved while the file system was asked.
        var refusal = p.Refusal ?? WhyNotOwned(name) ?? (_open.Count >= _options.MaxOpenImages && !CloseLeastRecentlyUsed()
            ? new ImageException(ImageError.Unavailable,
                $"image '{name}' cannot be opened now: {_open.Count} images are open (Storage:MaxOpenImages) and none of them is idle; try again")
            : null);
        IActorRef? image = null;
        if (refusal is null)
        {
            image = Context.ActorOf(ImageSupervisor.Props(name, PathOf(name), _fs, _budget, _options.MetadataCacheWaitLimit, _chains), Uri.EscapeDataString(name));
            Context.Watch(image);
            _open[name] = image;
            _names[image] = name;
        }
        foreach (var (message, sender) in waiting)
        {
            // A delete or snapshot that arrived meanwhile decides again, now that the check is done.
            if (message is DeleteImage or RunMaintenance) Self.Tell(message, sender);
            else if (image is null) sender.Tell(new Status.Failure(refusal!));
            else ForwardTo(image, name, message, sender);
        }
    }

    /// <summary>Starts closing the least recently used open image with no request in flight; false when every one is busy.</summary>
    private bool CloseLeastRecentlyUsed()
    {
        string? oldest = null;
        long oldestAt = long.MaxValue;
        foreach (var name in _open.Keys)
        {
            if (_closeRequested.Contains(name)) continue;
            if (_ownership is not null && !_ownership.IsIdle(name, TimeSpan.Zero)) continue;
            long at = _ownership?.LastActive(name) ?? _lastAttached.GetValueOrDefault(name);
            if (at < oldestAt) (oldest, oldestAt) = (name, at);
        }
        if (oldest is null) return _closeRequested.Count > 0; // some are closing already: the open count is about to drop
        BeginClose(oldest);
        return true;
    }

    /// <summary>
    /// Requests already inside the image may still need its answers (mappings, commits) before it
    /// can drain, so messages keep flowing to it until it says it is ready to stop.
    /// </summary>
    private void BeginClose(string name)
    {
        if (!_open.TryGetValue(name, out var image) || !_closeRequested.Add(name)) return;
        image.Tell(new CloseImage(name));
    }

    private void OnTerminated(IActorRef image)
    {
        if (!_names.Remove(image, out var name)) return;
        _open.Remove(name);
        _lastAttached.Remove(name);
        _closeRequested.Remove(name);
        if (_releaseRequests.Remove(name, out var released))
            foreach (var r in released) r.Tell(new LocalImageReleased(name));
        if (_deleteRequests.Remove(name, out var requester))
        {
            // Operations queued behind the delete are answered after it (404: the file is gone).
            _closing.TryAdd(name, []);
            if (_maintenance.Remove(name, out var queued))
                foreach (var (message, sender) in queued) _closing[name].Add((message, sender));
            DeleteFile(name, requester);
        }
        else if (_maintenance.ContainsKey(name))
        {
            StartMaintenance(name);
        }
        else
        {
            Replay(name);
        }
        ReplyIfStopped();
    }

    private void Replay(string name)
    {
        if (!_closing.Remove(name, out var waiting)) return;
        foreach (var (message, sender) in waiting) Self.Tell(message, sender);
    }

    private void ReplyIfStopped()
    {
        if (_stopAllRequester is not null && _open.Count == 0 && _maintenance.Count == 0)
        {
            _stopAllRequester.Tell(new StoreStopped());
            _stopAllRequester = null;
        }
    }

    /// <summary>
    /// Queues the operation; the first one of an image runs once no supervisor has the image open
    /// (an open one is closed the way an idle one is). While operations run, every message for the
    /// image waits in <see cref="_closing"/>, as it does while an image closes.
    /// </summary>
    private void Maintain(RunMaintenance m)
    {
        string name = m.Image;
        if (RefusedName(name)) return;
        if (_maintenance.TryGetValue(name, out var queue))
        {
            queue.Enqueue((m, Sender));
            return;
        }
        if (_closing.TryGetValue(name, out var waiting))
        {
            waiting.Add((m, Sender)); // closing or being deleted: decide after that
            return;
        }
        _maintenance[name] = new Queue<(RunMaintenance, IActorRef)>([(m, Sender)]);
        if (_open.ContainsKey(name)) BeginClose(name);
        else StartMaintenance(name);
    }

    private void StartMaintenance(string name)
    {
        _closing.TryAdd(name, []);
        var (message, replyTo) = _maintenance[name].Peek();
        string path = PathOf(name);
        var fs = _fs;
        var budget = _budget;
        var waitLimit = _options.MetadataCacheWaitLimit;
        var chains = _chains;
        string directory = _directory;
        var ownership = _ownership;
        Task.Run(async () =>
            {
                if (WhyNotOpen(directory, name, ownership) is { } refusal) throw refusal;
                await RefuseIfBackingAsync(chains, name, "changed").ConfigureAwait(false);
                return await Image.Maintenance.MaintenanceRunner.RunAsync(name, path, fs, budget, waitLimit, message.Operation, CancellationToken.None).ConfigureAwait(false);
            })
            .PipeTo(Self, success: r => new MaintenanceDone(name, replyTo, r),
                failure: e => new MaintenanceDone(name, replyTo, new Status.Failure(MaintenanceError(name, e is AggregateException { InnerException: { } inner } ? inner : e))));
    }

    /// <summary>409 naming the images that use this one as their backing file (or read it as one on this node now).</summary>
    private static async Task RefuseIfBackingAsync(BackingChains chains, string name, string what, string? fileName = null)
    {
        string file = fileName ?? Path.GetFileName(ImageNames.PathFor(chains.Directory, name));
        var users = await chains.UsersOfAsync(file, CancellationToken.None).ConfigureAwait(false);
        if (users.Count == 0 && !chains.IsOpen(file)) return;
        string who = users.Count > 0 ? string.Join(", ", users.Select(u => $"'{u}'")) : "an overlay or a read in progress on this node";
        throw new ImageException(ImageError.Conflict,
            $"image '{name}' is the backing image of {who}; it cannot be {what} while they use it (delete them, or qemu-img rebase them onto another base, first)",
            "backing image");
    }

    private static Exception MaintenanceError(string name, Exception e) => e switch
    {
        ImageException i => i,
        ImageLockedException => new ImageException(ImageError.Unavailable, $"image '{name}' is held open by another process (its lock is taken); try again", null, e),
        ImageInUseException => new ImageException(ImageError.Conflict, $"image '{name}': {e.Message}", "in use", e),
        NotAnImageFileException n => new ImageException(ImageError.Unsupported, $"image '{name}': its file {n.Why}", "not a regular file", n),
        _ => IoErrors.Map(e, name),
    };

    private void OnMaintenanceDone(MaintenanceDone done)
    {
        done.ReplyTo.Tell(done.Result);
        var queue = _maintenance[done.Image];
        queue.Dequeue();
        if (queue.Count > 0)
        {
            StartMaintenance(done.Image);
            return;
        }
        _maintenance.Remove(done.Image);
        foreach (var (message, sender) in queue) Self.Tell(message, sender);
        Replay(done.Image);
        ReplyIfStopped();
    }

    private void Create(CreateImage c)
    {
        string name = c.Image;
        if (!ImageNames.IsValid(name))
        {
            Sender.Tell(new Status.Failure(new ImageException(ImageError.InvalidArgument,
                $"'{name}' is not a valid image name: use 1 to 128 of A-Z a-z 0-9 . _ - starting with a letter or digit")));
            return;
        }
        if (_creating.Contains(name) || _open.ContainsKey(name))
        {
            Sender.Tell(new Status.Failure(AlreadyExists(name)));
            return;
        }
        ImagePlan plan;
        try { plan = ImageCreator.Plan(c.Options); }
        catch (QcowFormatException e)
        {
            var kind = e.Problem == QcowProblem.LimitExceeded ? ImageError.LimitExceeded : ImageError.InvalidArgument;
            Sender.Tell(new Status.Failure(new ImageException(kind, e.Message)));
            return;
        }
        // A writer of the new overlay's backing image on this node lets go of it: the next open of it is read-only (it has a user now).
        if (c.Options.BackingFile is { } backing && Path.GetFileNameWithoutExtension(backing) is var baseName && _open.ContainsKey(baseName))
            BeginClose(baseName);
        _creating.Add(name);
        var replyTo = Sender;
        string path = PathOf(name);
        var header = plan.Header;
        var fs = _fs;
        OffThread(async () =>
        {
            if (FileKind.Of(path) != FileKindValue.Missing) throw AlreadyExists(name);
            await fs.CreateAtomicAsync(path, plan.Writes, plan.FileLength, CancellationToken.None).ConfigureAwait(false);
            return true;
        }, $"create image '{name}'").ContinueWith(t =>
        {
            object result = t.IsCompletedSuccessfully
                ? ImageInfo.FromHeader(name, header, plan.FileLength)
                : new Status.Failure(t.Exception!.InnerException is IOException io and not DirectorySyncException && File.Exists(path) && !IoErrors.IsDiskFull(io)
                    ? AlreadyExists(name)
                    : IoErrors.Map(t.Exception!.InnerException!, name));
            return new Created(name, replyTo, result);
        }, TaskScheduler.Default).PipeTo(Self);
    }

    private static ImageException AlreadyExists(string name) => new(ImageError.AlreadyExists, $"image '{name}' already exists");

    private void Delete(DeleteImage d)
    {
        string name = d.Image;
        if (RefusedName(name)) return;
        if (_closing.TryGetValue(name, out var waiting) && !_open.ContainsKey(name))
        {
            waiting.Add((d, Sender)); // the file is being deleted: answer after that
            return;
        }
        if (_open.ContainsKey(name))
        {
            if (_deleteRequests.ContainsKey(name))
            {
                Sender.Tell(new Status.Failure(new ImageException(ImageError.Conflict, $"image '{name}' is being deleted")));
                return;
            }
            _deleteRequests[name] = Sender;
            BeginClose(name);
            return;
        }
        _closing[name] = []; // hold requests for the name until the file is gone
        DeleteFile(name, Sender);
    }

    private void DeleteFile(string name, IActorRef replyTo)
    {
        _closing.TryAdd(name, []);
        string directory = _directory;
        var chains = _chains;
        var ownership = _ownership;
        var fs = _fs;
        Task.Run(async () =>
        {
            string qcow2 = ImageNames.PathFor(directory, name);
            string path = File.Exists(qcow2) ? qcow2 : ImageNames.RawImagePath(directory, name) ?? qcow2;
            if (!File.Exists(path)) return new Deleted(name, replyTo, new ImageException(ImageError.NotFound, $"image '{name}' does not exist"));
            await RefuseIfBackingAsync(chains, name, "deleted", Path.GetFileName(path)).ConfigureAwait(false);
            // Unlinked only by the owner, under the image's own locks (the cluster's flock and QEMU's
            // write lock): a late DELETE on a former owner must not pull the file from under the node
            // (or the VM) that writes it now.
            if (ownership is not null && !ownership.MayOpen(name))
                throw new ImageException(ImageError.Unavailable, $"image '{name}' is moving to another node; try again");
            await using (fs.Open(path, writable: true))
            {
                File.Delete(path);
            }
            string marker = ImageSupervisor.MarkerPathFor(path);
            if (FileKind.Of(marker) != FileKindValue.Missing) File.Delete(marker);
            fs.SyncDirectory(directory);
            return new Deleted(name, replyTo, null);
        }).PipeTo(Self, failure: e => new Deleted(name, replyTo, MaintenanceError(name, e is AggregateException { InnerException: { } inner } ? inner : e)));
    }
}
