using QcowActors.Actors.Image;
using QcowActors.Format;

namespace QcowActors.Actors.Store;

/// <summary>Creates {Name}.qcow2 atomically. Reply: <see cref="Service.ImageInfo"/>.</summary>
public sealed record CreateImage(string Image, CreateOptions Options) : IImageMessage;

/// <summary>Closes the image if open, then removes its file. Reply: <see cref="ImageDeleted"/>.</summary>
public sealed record DeleteImage(string Image) : IImageMessage;

public sealed record ImageDeleted(string Image);

/// <summary>Reply: IReadOnlyList&lt;ImageInfo&gt;, read from headers without opening images.</summary>
public sealed record ListImages;

/// <summary>Image to store: close me (it failed to open, or turned out corrupt).</summary>
public sealed record Passivate(string Image);

/// <summary>Image to store: file closed; hold my messages from now on and send <see cref="StopNow"/>.</summary>
public sealed record ImageReadyToStop(string Image);

/// <summary>Store to a closed image: every message routed to you has been sent; stop.</summary>
public sealed record StopNow;

/// <summary>Flushes and closes every open image. Reply: <see cref="StoreStopped"/>.</summary>
public sealed record StopAllImages;

public sealed record StoreStopped;

/// <summary>Closes the image if it is open here (flushed, file closed). Reply: <see cref="LocalImageReleased"/>.</summary>
public sealed record ReleaseLocalImage(string Image);

public sealed record LocalImageReleased(string Image);

/// <summary>Test and diagnostics hook. Reply: <see cref="StoreState"/>.</summary>
public sealed record GetStoreState;

/// <summary>Supervisors alive on this node (open images), and names whose messages wait for a close or delete.</summary>
public sealed record StoreState(int OpenImages, int Closing);

/// <summary>
/// Runs a snapshot or resize operation on the image's file while the image is closed: an open image
/// is closed first (requests inside finish, everything is flushed), messages for it wait meanwhile and
/// go to the next incarnation, which opens the changed file. Reply: the operation's result, or a failure.
/// </summary>
public sealed record RunMaintenance(string Image, Image.Maintenance.MaintenanceOperation Operation) : IImageMessage;
