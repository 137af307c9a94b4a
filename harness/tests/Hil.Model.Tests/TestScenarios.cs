using Hil.Model.Core;
using Hil.Model.Scenarios;

namespace Hil.Model.Tests;

/// <summary>Loads the repository's scenario files and small inline scenarios.</summary>
internal static class TestScenarios
{
    public static string RepoRoot { get; } = FindRoot();

    private static string FindRoot()
    {
        for (var d = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "HilHarness.sln"))) return d.FullName;
        throw new InvalidOperationException("HilHarness.sln not found above the test directory");
    }

    public static Scenario Load(string name, Policy? policy = null)
    {
        var path = Path.Combine(RepoRoot, "testsuites", "model", name + ".yaml");
        return ScenarioParser.Parse(File.ReadAllText(path), path, policy);
    }

    public static Scenario Inline(string yaml, Policy? policy = null) => ScenarioParser.Parse(yaml, "inline.yaml", policy);
}
