using Microsoft.Extensions.Options;
using System.Text.Json.Serialization;
using QcowActors.Actors.Cluster;
using QcowActors.Actors.Image;
using QcowActors.Actors.Service;
using QcowActors.Api.Auth;
using QcowActors.Api.Cluster;
using QcowActors.Api.Endpoints;
using QcowActors.Api.OpenApi;
using QcowActors.Api.Problems;
using QcowActors.Api.Tickets;

namespace QcowActors.Api;

/// <summary>
/// Composes the web application around an <see cref="IImageService"/> registration. Program adds
/// the store; the API tests add the same store over a fault-injecting file system.
/// </summary>
internal static class ApiHost
{
    public const int MinWriteChunk = 4096;
    public const int MaxWriteChunk = 256 * 1024 * 1024;

    public static WebApplication Build(string[] args, Action<IServiceCollection> addStore)
    {
        WebApplicationBuilder builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            // appsettings.json ships beside the binary; Storage:Directory is resolved against the
            // current directory on its own, so the server finds both wherever it is started.
            ContentRootPath = AppContext.BaseDirectory,
        });
        // The host loads ASPNETCORE_* variables before appsettings.json, so appsettings' "urls" would
        // beat ASPNETCORE_URLS. Adding them (and the command line) again restores the order people
        // expect: appsettings.json < ASPNETCORE_URLS < --urls.
        builder.Configuration.AddEnvironmentVariables("ASPNETCORE_");
        builder.Configuration.AddCommandLine(args);

        UseInlineScheduling(builder);
        RequireCrlfLineEnds();
        BootstrapEndpoint.Listen(builder);
        // Tokens decide what is registered and where the server may listen: read and checked now,
        // before anything binds (a refusal throws; Program prints the reasons).
        AuthOptions auth = AuthConfiguration.Read(builder.Configuration);
        IReadOnlyList<string> listenerWarnings = ListenerRules.Check(ListenerRules.Listeners(builder.Configuration), auth);
        AddServices(builder.Services, builder.Configuration);
        builder.Services.AddTokenAuthentication(auth);
        addStore(builder.Services);

        WebApplication app = builder.Build();
        LogAuthentication(app, auth, listenerWarnings);
        UsePipeline(app, auth);
        return app;
    }

    /// <summary>Which tokens (names and scopes only) and which warnings; never a token or a hash.</summary>
    private static void LogAuthentication(WebApplication app, AuthOptions auth, IReadOnlyList<string> listenerWarnings)
    {
        ILogger log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(Log.Category);
        if (auth.HasTokens)
            log.LogInformation("Authentication: {Count} token(s): {Tokens}", auth.Tokens.Count,
                string.Join(", ", auth.Tokens.Select(t => $"{t.Name} ({t.Scope})")));
        foreach (string warning in listenerWarnings)
            log.LogWarning("{Warning}", warning);
    }

    /// <summary>
    /// Http:InlineScheduling (default true): request code runs on the thread that received the bytes,
    /// as in nginx's event loop, instead of hopping to the thread pool twice per request; random
    /// 4 KiB GETs cost ~20% less CPU. Safe because no handler blocks: the actors run on their own
    /// dispatcher, file reads block only on page-cache hits (PageCacheRead) and everything else is awaited.
    /// </summary>
    private static void UseInlineScheduling(WebApplicationBuilder builder)
    {
        if (!builder.Configuration.GetValue("Http:InlineScheduling", true))
            return;
        builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true);
        // Read once when the first socket is created (after this point): socket completions then run
        // on the epoll threads too, which is what lets Kestrel's inline scheduling skip the pool.
        const string inlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
        if (Environment.GetEnvironmentVariable(inlineCompletions) is null)
            Environment.SetEnvironmentVariable(inlineCompletions, "1");
    }

    /// <summary>
    /// Kestrel takes a bare LF for a line end by default (RFC 9112 §2.2 allows either). A proxy in
    /// front that does not would frame the same bytes differently (request smuggling), and a LF inside
    /// a request target leaves a truncated request line that Kestrel answers 505, as if the version
    /// were the fault. Every client we serve (curl, QEMU, imageio) sends CRLF: bare LF is a 400.
    /// Read by Kestrel when it starts, so set before the server is built.
    /// </summary>
    private static void RequireCrlfLineEnds()
        => AppContext.SetSwitch("Microsoft.AspNetCore.Server.Kestrel.DisableHttp1LineFeedTerminators", true);

    private static void AddServices(IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<StoreOptions>()
            .Bind(configuration.GetSection(StoreOptions.Section))
            .PostConfigure(o =>
            {
                if (!string.IsNullOrWhiteSpace(o.Directory))
                    o.Directory = Path.GetFullPath(o.Directory);
            })
            .Validate(o => !string.IsNullOrWhiteSpace(o.Directory), "Storage:Directory must name a directory")
            .Validate(o => o.MaxWriteChunk is >= MinWriteChunk and <= MaxWriteChunk,
                $"Storage:MaxWriteChunk must be between {MinWriteChunk} and {MaxWriteChunk} bytes")
            .Validate(o => o.MetadataCacheBytesPerImage >= MetadataBudget.MinPerImageBytes,
                $"Storage:MetadataCacheBytesPerImage must be at least {MetadataBudget.MinPerImageBytes} bytes (16 MiB): a working set of 2 MiB clusters and a flush's share")
            .Validate(o => o.MetadataCacheBytesTotal >= o.MetadataCacheBytesPerImage,
                "Storage:MetadataCacheBytesTotal must be at least Storage:MetadataCacheBytesPerImage")
            .Validate(o => o.MaxOpenImages >= 1, "Storage:MaxOpenImages must be at least 1")
            .Validate(o => o.MetadataCacheWaitLimit > TimeSpan.Zero && o.MetadataCacheWaitLimit < o.AskTimeout,
                "Storage:MetadataCacheWaitLimit must be positive and shorter than Storage:AskTimeout")
            .Validate(o => o.PassivateAfter > TimeSpan.Zero, "Storage:PassivateAfter must be positive")
            .ValidateOnStart();
        RefuseRetiredSettings(configuration);
        services.AddOptions<ClusterSettings>()
            .Bind(configuration.GetSection(ClusterSettings.Section))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<ClusterSettings>, ClusterSettingsValidation>();

        // SIGTERM: readiness 503, images handed off (≤ 10 s), cluster left, HTTP drained (≤ 8 s), images
        // still open closed (see NodeLifecycle); 25 s fits the pod's 35 s grace period after its 5 s preStop pause.
        services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(25));
        services.AddHealthChecks().AddCheck<NodeLifecycle>("node", tags: [HealthEndpoints.ReadyTag]);
        services.AddSingleton<NodeLifecycle>();
        services.AddHttpForwarder();
        services.AddSingleton<ForwardingSignature>();
        services.AddSingleton<OwnerForwarder>();
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<TicketStore>();

        // Responses write numbers as numbers; the web default (also reading "123") would make every
        // integer in the generated document "integer or string". Request bodies are parsed by hand.
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.NumberHandling = JsonNumberHandling.Strict);
        services.AddProblemDetails(o => o.CustomizeProblemDetails = ApiProblems.ApplyDefaults);
        services.AddExceptionHandler<ApiExceptionHandler>();
        services.AddOpenApi(o => o.DescribeHealth().DescribeTicketPaths().DescribeSecurity().AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "QcowActors";
            document.Info.Description = "QCOW2 virtual disks over HTTP; /images/{name}/data speaks oVirt imageio's transfer protocol.";
            return Task.CompletedTask;
        }));
    }

    /// <summary>Settings of the two caches the one metadata cache replaced: a value set for them would be silently ignored.</summary>
    private static void RefuseRetiredSettings(IConfiguration configuration)
    {
        var storage = configuration.GetSection(StoreOptions.Section);
        foreach (string key in new[] { "L2CacheBytesPerImage", "L2CacheBytesTotal", "RefcountCacheBytesPerImage", "RefcountCacheBytesTotal" })
        {
            if (storage[key] is not null)
                throw new OptionsValidationException(StoreOptions.Section, typeof(StoreOptions),
                    [$"Storage:{key} is gone: L2 tables and refcount blocks share one metadata cache now; set Storage:MetadataCacheBytesPerImage and Storage:MetadataCacheBytesTotal instead"]);
        }
    }

    private static void UsePipeline(WebApplication app, AuthOptions auth)
    {
        // First: the management port's one route, and routing headers only from a peer that signed them.
        app.UseMiddleware<EdgeGuard>();
        NodeLifecycle.Use(app);
        app.UseExceptionHandler();
        // Empty 4xx/5xx answers from routing (unknown path 404, wrong method 405) become problems too.
        app.UseStatusCodePages();
        // /tickets/{id}/data... becomes its image's data path before routing picks the endpoint.
        app.UseMiddleware<TicketPaths>();
        // Explicit, so that endpoint matching (which WebApplication would otherwise put first) comes after EdgeGuard and the ticket paths.
        app.UseRouting();
        // With tokens: 401/403 here, before a request is forwarded anywhere.
        app.UseTokenAuthentication(auth);
        // Requests about an image go to the node that owns it (this one, or forwarded).
        app.UseMiddleware<ImageRouting>();

        // Every endpoint is mapped in this group, which gives each the scope EndpointScopes names.
        RouteGroupBuilder api = app.MapGroup("").RequireScopes(enforce: auth.HasTokens);
        api.MapOpenApi();
        api.MapSwaggerUi();
        api.MapImages();
        api.MapDiskRead();
        api.MapDiskWrite();
        api.MapImageio();
        api.MapSnapshots();
        api.MapBitmaps();
        api.MapTickets();
        api.MapChecksums();
        api.MapHealth();
        api.MapDiagnostics(app.Configuration);
        BootstrapEndpoint.Map(api, app.Configuration);
    }
}
