using Microsoft.Extensions.Options;
using QcowActors.Actors.Cluster;

namespace QcowActors.Api.Cluster;

/// <summary>Fails the start with every problem of the Cluster section spelled out.</summary>
internal sealed class ClusterSettingsValidation : IValidateOptions<ClusterSettings>
{
    public ValidateOptionsResult Validate(string? name, ClusterSettings options)
    {
        var problems = options.Validate().ToList();
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
