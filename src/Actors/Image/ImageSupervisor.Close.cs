using Akka.Event;
using Akka.Actor;

namespace QcowActors.Actors.Image;

/// <summary>Clean close: no new I/O, wait for requests in flight, a last flush, close the file, remove the open marker.</summary>
internal sealed partial class ImageSupervisor
{
    private sealed record GateDrained;
    private sealed record FileClosed;
    private bool _closing;
    private bool _drained;
    private bool _finalFlushOk = true;

    private void BeginClose()
    {
        if (_closing) return;
        _closing = true;
        Context.SetReceiveTimeout(null);
        _gate.CloseAsync().PipeTo(Self, success: () => new GateDrained());
    }

    private bool OnCloseMessage(object message)
    {
        switch (message)
        {
            case GateDrained:
                _drained = true;
                RequestFlush(null);
                return true;
            case FileClosed:
                _fileClosed = true;
                if (!_finalFlushOk) _log.Warning("Image {0} closed with unflushed metadata; it will be repaired on next open", _name);
                HandOver();
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// The store keeps routing to us until it has our ReadyToStop; whatever reaches us after it goes
    /// back to the store, which holds it for the next incarnation. Its StopNow comes after every
    /// message it sent us, so nothing is dropped.
    /// </summary>
    private void HandOver()
    {
        _directory?.Clear();
        Context.Parent.Tell(new Store.ImageReadyToStop(_name));
        Become(message =>
        {
            if (message is Store.StopNow) Context.Stop(Self);
            else if (message is IImageMessage) Context.Parent.Forward(message);
        });
    }

    /// <summary>Called when a flush finished and no other is waiting.</summary>
    private void AfterFlush()
    {
        if (!_closing || !_drained || _flush is not null) return;
        _closing = false; // once
        bool clean = _failedRun is null && _pendingDecrements.Count == 0;
        _finalFlushOk = clean;
        CloseFileAsync(clean).PipeTo(Self, success: () => new FileClosed());
    }

    private async Task CloseFileAsync(bool clean)
    {
        await _file.DisposeAsync().ConfigureAwait(false);
        if (clean && File.Exists(_markerPath))
        {
            File.Delete(_markerPath);
            _fs.SyncDirectory(Path.GetDirectoryName(_markerPath)!);
        }
    }

    private bool _fileClosed;

    protected override void PostStop()
    {
        _cacheBudget.Add(-(long)_l2Actors.Count * (_layout?.ClusterSize ?? 0));
        _rcBudget.Add(-(long)_rcStates.Count * (_layout?.ClusterSize ?? 0));
        if (_file is null || _fileClosed) return;
        // Stopped without a clean close (a failure): release the handle; the marker stays, so the next open repairs.
        _log.Warning("Image {0} stopped without a clean close; it will be checked for leaks on next open", _name);
        _ = _file.DisposeAsync(); // closing a handle completes synchronously; nothing to await in PostStop
    }
}
