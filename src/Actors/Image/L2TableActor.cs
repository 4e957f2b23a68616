using System.Buffers.Binary;
using Akka.Actor;
using QcowActors.Actors.Io;
using QcowActors.Actors.Service;
using QcowActors.Format;

namespace QcowActors.Actors.Image;

/// <summary>
/// Owns one L2 table: decides per cluster how a write lands (in place, or a new cluster filled
/// with zeros or the old content), publishes entries when the data is in the file, and answers
/// mappings for reads. It never waits for data I/O or an fsync: the bytes move in the request,
/// and the table is written by the supervisor's flush from a snapshot.
/// </summary>
internal sealed partial class L2TableActor : UntypedActor, IWithStash, IWithTimers
{
    private readonly L2TableState _state;
    private readonly ClusterLayout _layout;
    private readonly IImageFile _file;
    private readonly bool _zeroFlagAllowed;
    private readonly L2Directory _directory;

    public L2TableActor(L2TableState state, ClusterLayout layout, IImageFile file, bool zeroFlagAllowed, L2Directory directory)
    {
        _state = state;
        _layout = layout;
        _file = file;
        _zeroFlagAllowed = zeroFlagAllowed;
        _directory = directory;
    }

    public IStash Stash { get; set; } = null!;
    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(L2TableState state, ClusterLayout layout, IImageFile file, bool zeroFlagAllowed, L2Directory directory)
        => Akka.Actor.Props.Create(() => new L2TableActor(state, layout, file, zeroFlagAllowed, directory));

    private long TableStart => _layout.L2TableStart(_state.L1Index);

    protected override void PreStart()
    {
        if (!_state.IsLoaded)
        {
            Become(Loading);
            LoadAsync().PipeTo(Self);
        }
    }

    /// <summary>The table from the file: a <see cref="SparseL2Table"/> when few slots are used, else ulong[].</summary>
    private async Task<object> LoadAsync()
    {
        byte[] bytes = System.Buffers.ArrayPool<byte>.Shared.Rent(_layout.ClusterSize);
        try
        {
            await _file.ReadAsync(bytes.AsMemory(0, _layout.ClusterSize), _state.HostOffset, CancellationToken.None).ConfigureAwait(false);
            if (SparseL2Table.TryFrom(bytes.AsSpan(0, _layout.ClusterSize), _layout.L2Entries) is { } sparse)
                return sparse;
            var entries = new ulong[_layout.L2Entries];
            for (int i = 0; i < entries.Length; i++)
                entries[i] = BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(i * 8));
            return entries;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    private void Loading(object message)
    {
        switch (message)
        {
            case ulong[] or SparseL2Table:
                _state.Entries = message as ulong[];
                _state.Sparse = message as SparseL2Table;
                _state.Dirty = false;
                _directory.Publish(_state);
                Context.Parent.Tell(new L2Loaded(_state.L1Index));
                Become(OnReceive);
                Stash.UnstashAll();
                break;
            case Status.Failure f:
                // Nothing was loaded, so nothing can be lost: answer what waits with 503 and let the
                // supervisor replace this actor; the next request tries the read again.
                Become(m => LoadFailed(m, f.Cause));
                Stash.UnstashAll();
                Context.Parent.Tell(new L2LoadFailed(_state.L1Index));
                break;
            default:
                Stash.Stash();
                break;
        }
    }

    private void LoadFailed(object message, Exception cause)
    {
        switch (message)
        {
            case StopL2Table s:
                Sender.Tell(new L2Stopped(s.L1Index));
                Context.Stop(Self);
                break;
            case CollectL2 c:
                Sender.Tell(new L2Snapshot(c.FlushId, _state.L1Index, _state.HostOffset, null));
                break;
            case IImageMessage m:
                Sender.Tell(new Status.Failure(new ImageException(ImageError.Unavailable,
                    $"image '{m.Image}': reading L2 table {_state.L1Index} failed; try again", null, cause)));
                break;
        }
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case MapRange m: Sender.Tell(Map(m)); break;
            case PrepareWrite w: Prepare(w, Sender); break;
            case ClustersAllocated a: HostsAllocated(a); break;
            case AllocationFailed f: AllocationFailed(f); break;
            case CommitWrite c: Commit(c); break;
            case AbortWrite a: Abort(a.PlanId); break;
            case ExpirePlan e: Abort(e.PlanId); break;
            case ZeroClusters z: Zero(z, Sender); break;
            case GetL2Extents: Sender.Tell(Extents()); break;
            case RelocateTable r:
                _state.HostOffset = r.NewOffset;
                _state.Dirty = true;
                break;
            case CollectL2 c: Sender.Tell(Snapshot(c.FlushId)); break;
            case StopL2Table s:
                if (_state.Dirty || _state.Plans.Count > 0 || _state.Waiting.Count > 0 || _state.InFlight.Count > 0)
                {
                    Sender.Tell(new L2StayAlive(s.L1Index));
                }
                else
                {
                    Sender.Tell(new L2Stopped(s.L1Index));
                    Context.Stop(Self);
                }
                break;
            case CrashL2Table: throw new InvalidOperationException($"L2 table {_state.L1Index} crashed on request (test hook)");
            default: Unhandled(message); break;
        }
    }

    private L2Snapshot Snapshot(long flushId)
    {
        if (!_state.Dirty) return new L2Snapshot(flushId, _state.L1Index, _state.HostOffset, null);
        var bytes = new byte[_layout.ClusterSize];
        var entries = DenseEntries();
        for (int i = 0; i < entries.Length; i++)
            BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(i * 8), entries[i]);
        _state.Dirty = false;
        return new L2Snapshot(flushId, _state.L1Index, _state.HostOffset, bytes);
    }

    /// <summary>The entries to change in place; a sparse table turns dense first and readers are switched to it.</summary>
    private ulong[] DenseEntries()
    {
        var entries = _state.Dense(out bool converted);
        if (converted) _directory.Publish(_state);
        return entries;
    }

    private (int First, int Last) Slots(long offset, long length)
        => (_layout.L2Index(offset), _layout.L2Index(offset + length - 1));

    private bool Busy(int first, int last)
    {
        if (_state.InFlight.Count == 0) return false;
        for (int i = first; i <= last; i++)
            if (_state.InFlight.ContainsKey(i)) return true;
        return false;
    }

    /// <summary>Retries waiting requests after a plan finished; those still blocked wait again.</summary>
    private void RetryWaiting()
    {
        if (_state.Waiting.Count == 0) return;
        var waiting = _state.Waiting.ToArray();
        _state.Waiting.Clear();
        foreach (var (msg, sender) in waiting)
        {
            switch (msg)
            {
                case PrepareWrite w: Prepare(w, sender); break;
                case ZeroClusters z: Zero(z, sender); break;
            }
        }
    }

    private static ImageException Compressed(long virtualOffset) => new(ImageError.Unsupported,
        $"the cluster at virtual offset {virtualOffset} is compressed; compressed clusters are not supported yet",
        "compressed clusters");
}
