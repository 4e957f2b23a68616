using QcowActors.Fuzz;

// No arguments: the afl++ target (scripts/fuzz.sh runs it under afl-fuzz after sharpfuzz instrumented the
// Format and Actors assemblies). With file arguments: runs each through the same target and prints what
// escaped, to reproduce a crash without afl — from the plain build (bin/Release), not the instrumented copy
// in .fuzz/bin, whose probes need afl's shared memory:
//   dotnet tests/QcowActors.Fuzz/bin/Release/net10.0/QcowActors.Fuzz.dll tests/QcowActors.Format.Tests/FuzzRegressions/new/*
if (args.Length > 0)
{
    int failed = 0;
    foreach (var path in args)
    {
        try
        {
            ImageParserTarget.Run(File.ReadAllBytes(path));
            Console.WriteLine($"ok    {path}");
        }
        catch (Exception e)
        {
            failed++;
            Console.WriteLine($"CRASH {path}: {e}");
        }
    }
    return failed == 0 ? 0 : 1;
}

SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
{
    using var copy = new MemoryStream();
    stream.CopyTo(copy);
    ImageParserTarget.Run(copy.ToArray());
});
return 0;
