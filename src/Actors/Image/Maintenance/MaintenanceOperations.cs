namespace QcowActors.Actors.Image.Maintenance;

/// <summary>An operation that changes the image's metadata as a whole; run on the file while the image is closed (<see cref="MaintenanceRunner"/>).</summary>
public abstract record MaintenanceOperation;

/// <summary>Reply: <see cref="Service.SnapshotInfo"/> of the new snapshot.</summary>
public sealed record CreateSnapshotOperation(string Name) : MaintenanceOperation;

/// <summary>Reply: <see cref="Service.SnapshotInfo"/> of the snapshot removed.</summary>
public sealed record DeleteSnapshotOperation(string IdOrName) : MaintenanceOperation;

/// <summary>Reply: <see cref="Service.ImageInfo"/> after the active disk became the snapshot's.</summary>
public sealed record RevertSnapshotOperation(string IdOrName) : MaintenanceOperation;

/// <summary>Reply: <see cref="Service.ImageInfo"/> at the new size.</summary>
public sealed record ResizeOperation(long NewSize) : MaintenanceOperation;

/// <summary>
/// A checkpoint: a persistent bitmap and an internal snapshot of the same name, in one header write —
/// every write before it is in the snapshot, every write after it in the bitmap. Reply: <see cref="BitmapInfo"/>.
/// </summary>
public sealed record CreateCheckpointOperation(string Name, int GranularityBits, bool Enabled) : MaintenanceOperation;
