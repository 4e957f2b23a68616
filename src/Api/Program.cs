using QcowActors.Actors.Service;
using QcowActors.Api;

await ApiHost.Build(args, services => services.AddQcowStore()).RunAsync();

/// <summary>The entry point, public so test hosts can locate the application.</summary>
public partial class Program { }
