using Microsoft.Extensions.Options;
using QcowActors.Actors.Service;
using QcowActors.Api;
using QcowActors.Api.Auth;

if (args is [HashTokenCommand.Verb, .. var rest])
    return HashTokenCommand.Run(rest, Console.In, Console.Out, Console.Error, interactive: !Console.IsInputRedirected);

try
{
    await ApiHost.Build(args, services => services.AddQcowStore()).RunAsync();
    return 0;
}
catch (OptionsValidationException e)
{
    // A setting that stops the start (checked before anything listens): the reasons, not a stack trace.
    Console.Error.WriteLine("QcowActors did not start:");
    foreach (string failure in e.Failures)
        Console.Error.WriteLine($"  {failure}");
    return 1;
}

/// <summary>The entry point, public so test hosts can locate the application.</summary>
public partial class Program { }
