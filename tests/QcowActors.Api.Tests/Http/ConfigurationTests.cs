using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using QcowActors.Actors.Service;
using Xunit;

namespace QcowActors.Api.Tests.Http;

/// <summary>How the host is configured (built, not started). Serial: one test sets an environment variable.</summary>
[Collection(nameof(ConfigurationTests))]
[CollectionDefinition(nameof(ConfigurationTests), DisableParallelization = true)]
public sealed class ConfigurationTests
{
    private static WebApplication Build(params string[] args)
        => ApiHost.Build(args, s => s.AddQcowStore());

    /// <summary>Builds and starts: settings are validated by then (some while building, most when starting).</summary>
    private static async Task StartAsync(params string[] args)
    {
        await using WebApplication app = Build(args);
        await app.StartAsync();
        await app.StopAsync();
    }

    [Fact]
    public async Task Default_listen_address_is_loopback_8080_from_appsettings()
    {
        await using WebApplication app = Build();
        Assert.Equal("http://127.0.0.1:8080", app.Configuration["urls"]);
    }

    [Fact]
    public async Task Urls_argument_overrides_the_default()
    {
        await using WebApplication app = Build("--urls=http://127.0.0.1:9999");
        Assert.Equal("http://127.0.0.1:9999", app.Configuration["urls"]);
    }

    [Fact]
    public async Task Aspnetcore_urls_environment_overrides_appsettings_and_urls_argument_overrides_both()
    {
        Environment.SetEnvironmentVariable("ASPNETCORE_URLS", "http://127.0.0.1:7777");
        try
        {
            await using (WebApplication app = Build())
                Assert.Equal("http://127.0.0.1:7777", app.Configuration["urls"]);
            await using (WebApplication app = Build("--urls=http://127.0.0.1:9999"))
                Assert.Equal("http://127.0.0.1:9999", app.Configuration["urls"]);
        }
        finally
        {
            Environment.SetEnvironmentVariable("ASPNETCORE_URLS", null);
        }
    }

    [Fact]
    public async Task Storage_directory_defaults_to_data_under_the_current_directory()
    {
        await using WebApplication app = Build();
        Assert.Equal(Path.GetFullPath("data"), app.Services.GetRequiredService<IOptions<StoreOptions>>().Value.Directory);
    }

    [Fact]
    public async Task Storage_directory_comes_from_the_environment()
    {
        Environment.SetEnvironmentVariable("Storage__Directory", "/srv/images");
        try
        {
            await using WebApplication app = Build();
            Assert.Equal("/srv/images", app.Services.GetRequiredService<IOptions<StoreOptions>>().Value.Directory);
        }
        finally
        {
            Environment.SetEnvironmentVariable("Storage__Directory", null);
        }
    }

    [Fact]
    public async Task Relative_storage_directory_is_resolved_against_the_current_directory()
    {
        await using WebApplication app = Build("--Storage:Directory=images/here");
        Assert.Equal(Path.GetFullPath("images/here"), app.Services.GetRequiredService<IOptions<StoreOptions>>().Value.Directory);
    }

    [Fact]
    public async Task Absurd_write_chunk_size_fails_at_start()
    {
        await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync("--Storage:MaxWriteChunk=10", "--urls=http://127.0.0.1:0"));
    }

    [Theory]
    [InlineData("L2CacheBytesPerImage")]
    [InlineData("L2CacheBytesTotal")]
    [InlineData("RefcountCacheBytesPerImage")]
    [InlineData("RefcountCacheBytesTotal")]
    public void Settings_of_the_retired_caches_fail_at_start_naming_the_new_ones(string key)
    {
        var e = Assert.Throws<OptionsValidationException>(() => Build($"--Storage:{key}=1048576"));
        Assert.Contains($"Storage:{key} is gone", e.Message);
        Assert.Contains("Storage:MetadataCacheBytesPerImage", e.Message);
    }

    [Theory]
    [InlineData("--Storage:MetadataCacheBytesPerImage=1048576", "at least 16777216 bytes")]
    [InlineData("--Storage:MetadataCacheBytesTotal=1048576", "at least Storage:MetadataCacheBytesPerImage")]
    [InlineData("--Storage:MaxOpenImages=0", "MaxOpenImages must be at least 1")]
    [InlineData("--Storage:MetadataCacheWaitLimit=00:05:00", "shorter than Storage:AskTimeout")]
    [InlineData("--Storage:PassivateAfter=00:00:00", "PassivateAfter must be positive")]
    public async Task Unworkable_cache_and_image_limits_fail_at_start(string setting, string message)
    {
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(setting, "--urls=http://127.0.0.1:0"));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public async Task Metadata_cache_budget_and_open_image_limit_come_from_configuration()
    {
        await using WebApplication app = Build("--Storage:MetadataCacheBytesPerImage=33554432", "--Storage:MetadataCacheBytesTotal=67108864",
            "--Storage:MaxOpenImages=7", "--Storage:MetadataCacheWaitLimit=00:00:05");
        var options = app.Services.GetRequiredService<IOptions<StoreOptions>>().Value;
        Assert.Equal(32L << 20, options.MetadataCacheBytesPerImage);
        Assert.Equal(64L << 20, options.MetadataCacheBytesTotal);
        Assert.Equal(7, options.MaxOpenImages);
        Assert.Equal(TimeSpan.FromSeconds(5), options.MetadataCacheWaitLimit);
        var budget = app.Services.GetRequiredService<QcowActors.Actors.Image.MetadataBudget>();
        Assert.Equal(32L << 20, budget.PerImageBytes);
        Assert.Equal(64L << 20, budget.TotalBytes);
    }

    [Fact]
    public async Task Inline_scheduling_is_on_by_default_and_off_when_configured()
    {
        await using (WebApplication app = Build())
            Assert.True(app.Services.GetRequiredService<IOptions<SocketTransportOptions>>().Value.UnsafePreferInlineScheduling);
        await using (WebApplication app = Build("--Http:InlineScheduling=false"))
            Assert.False(app.Services.GetRequiredService<IOptions<SocketTransportOptions>>().Value.UnsafePreferInlineScheduling);
    }

    [Fact]
    public async Task The_actor_system_is_named_QcowActors()
    {
        // Cluster addresses are akka.tcp://QcowActors@host:port: operators' seed-node settings depend on the name.
        string store = Path.Combine(Path.GetTempPath(), "qa-name-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using WebApplication app = Build($"--Storage:Directory={store}", "--urls=http://127.0.0.1:0");
            await app.StartAsync();
            Assert.Equal("QcowActors", app.Services.GetRequiredService<Akka.Actor.ActorSystem>().Name);
            await app.StopAsync();
        }
        finally
        {
            if (Directory.Exists(store)) Directory.Delete(store, recursive: true);
        }
    }

    [Theory]
    [InlineData("--Cluster:StableAfter=soon", "Cluster:StableAfter")]
    [InlineData("--Cluster:Discovery=dns", "'kubernetes' or 'config'")]
    [InlineData("--Cluster:SeedNodes:0=127.0.0.1:4051", "akka.tcp://QcowActors@HOST:PORT")]
    [InlineData("--Cluster:Hostname=10.1.2.3", "Cluster:AllowPlainRemoting=true")]
    [InlineData("--Cluster:Tls:CertificatePath=/nonexistent/node.pfx", "Cluster:Tls:CertificatePath '/nonexistent/node.pfx' does not exist")]
    [InlineData("--Cluster:SeedNodes:0=akka.tcp://QcowActors@127.0.0.1:4051", "Cluster:ForwardingKey is required")]
    [InlineData("--Cluster:ForwardingKey=c2hvcnQ=", "Cluster:ForwardingKey must be base64 of at least 32")]
    public async Task Invalid_cluster_settings_fail_at_start_naming_the_key(string setting, string expected)
    {
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(setting, "--urls=http://127.0.0.1:0"));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public async Task A_cluster_node_refuses_to_start_with_file_locking_disabled()
    {
        // .NET would skip the flock that keeps a second node from writing an image.
        Environment.SetEnvironmentVariable("DOTNET_SYSTEM_IO_DISABLEFILELOCKING", "1");
        try
        {
            var e = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAsync(
                "--Cluster:SeedNodes:0=akka.tcp://QcowActors@127.0.0.1:4051", $"--Cluster:ForwardingKey={Convert.ToBase64String(new byte[32])}", "--urls=http://127.0.0.1:0"));
            Assert.StartsWith("file locking is disabled", Assert.Single(e.Failures));
        }
        finally
        {
            Environment.SetEnvironmentVariable("DOTNET_SYSTEM_IO_DISABLEFILELOCKING", null);
        }
    }
}
