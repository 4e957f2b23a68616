using Xunit.Abstractions;
using Xunit.Sdk;

namespace QcowActors.Cluster.Tests;

/// <summary>The position of a scenario in the run: the scenarios share one cluster, and the last one checks what all the others left behind.</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class StepAttribute(int order) : Attribute
{
    public int Order { get; } = order;
}

/// <summary>Runs the test cases of a class in <see cref="StepAttribute"/> order.</summary>
public sealed class StepOrderer : ITestCaseOrderer
{
    public const string TypeName = "QcowActors.Cluster.Tests.StepOrderer";
    public const string AssemblyName = "QcowActors.Cluster.Tests";

    public IEnumerable<TTestCase> OrderTestCases<TTestCase>(IEnumerable<TTestCase> testCases)
        where TTestCase : ITestCase
        => testCases.OrderBy(t => Order(t)).ThenBy(t => t.TestMethod.Method.Name, StringComparer.Ordinal);

    private static int Order(ITestCase testCase)
        => testCase.TestMethod.Method.GetCustomAttributes(typeof(StepAttribute).AssemblyQualifiedName).FirstOrDefault() is { } step
            ? step.GetConstructorArguments().Cast<int>().First()
            : int.MaxValue;
}
