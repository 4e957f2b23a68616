using BenchmarkDotNet.Running;
using QcowActors.Benchmarks;

if (args.Length > 0 && args[0] == "--strided-writes")
    return await StridedWrites.RunAsync(args);
if (args.Length > 0 && args[0] == "--strided-breakdown")
    return await StridedBreakdown.RunAsync(args);

BenchmarkSwitcher.FromAssembly(typeof(Engine).Assembly).Run(args);
return 0;
