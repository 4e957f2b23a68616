using QcowActors.Api.Tests.Support;

namespace QcowActors.Api.Tests.Http;

/// <summary>The HTTP contract over the real engine (AddQcowStore) with a temporary store directory.</summary>
public sealed class EngineImageApiBehaviour : ImageApiBehaviour
{
    private protected override Task<ApiServer> StartServerAsync() => ApiServer.StartWithEngineAsync();
}
