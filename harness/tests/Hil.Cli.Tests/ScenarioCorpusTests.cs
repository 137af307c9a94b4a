using System.CommandLine;
using System.Diagnostics;
using Hil.Cli;
using Hil.Cli.Commands;

namespace Hil.Cli.Tests;

/// <summary>
/// Malformed scenarios as users (and other tools) write them: every file of Corpus/scenarios gets,
/// from both `hil model simulate` and `hil model explore`, either a verdict (exit 0 or 1) or exactly
/// one error line naming file, line and field (exit 2) — never a stack trace, an internal error, a
/// hang or the machine's memory. Each FILE.yaml has FILE.expect beside it: "exit N", and for exit 2
/// "field F" (empty: any field, where no one field is to blame) and "line L" where the line is certain.
/// </summary>
[NonParallelizable]
public class ScenarioCorpusTests
{
    private static string Corpus => CliHarness.Repo("harness", "tests", "Hil.Cli.Tests", "Corpus", "scenarios");

    public static IEnumerable<string> Files() =>
        Directory.EnumerateFiles(Path.Combine(CliHarness.RepoRoot(), "harness", "tests", "Hil.Cli.Tests", "Corpus", "scenarios"), "*.yaml")
            .Select(Path.GetFileNameWithoutExtension).Order(StringComparer.Ordinal)!;

    [Test]
    public void TheCorpusIsLargeEnough() => Assert.That(Files().Count(), Is.GreaterThanOrEqualTo(60));

    [TestCaseSource(nameof(Files))]
    public void EachScenarioGetsAVerdictOrOneClearLine(string name)
    {
        var file = Path.Combine(Corpus, name + ".yaml");
        var expect = File.ReadAllLines(Path.Combine(Corpus, name + ".expect"))
            .Select(l => l.Split(' ', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");
        var code = int.Parse(expect["exit"]);
        foreach (var command in new[] { new[] { "model", "simulate", file }, ["model", "explore", file, "--max-states", "200000"] })
        {
            var clock = Stopwatch.StartNew();
            var r = CliHarness.Hil(command);
            var what = $"hil {string.Join(' ', command[..2])} {name}.yaml: exit {r.Code}\n{r.Err}";
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), what + " (too slow: a budget is missing)");
            Assert.That(r.Err, Does.Not.Contain("internal error").And.Not.Contain("   at "), what);
            if (code == 2 && r.Code == 1 && command[1] == "explore" && r.Out.Contains("explore handles at most"))
                continue;
            Assert.That(r.Code, Is.EqualTo(code), what);
            if (code != 2) continue;
            var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.That(lines, Has.Length.EqualTo(1), what);
            Assert.That(lines[0], Does.Match($@"^hil: {System.Text.RegularExpressions.Regex.Escape(file)}:\d+: .*: "), what + " (not file:line: field: problem)");
            if (expect.TryGetValue("field", out var field) && field.Length > 0)
                Assert.That(lines[0], Does.Contain($": {field}: "), what);
            if (expect.TryGetValue("line", out var line))
                Assert.That(lines[0], Does.StartWith($"hil: {file}:{line}: "), what);
        }
    }

    [Test]
    public void SpecialFilesAreRefusedAtOnce()
    {
        var fifo = Path.Combine(Path.GetTempPath(), $"hil-fifo-{Guid.NewGuid():N}");
        using (var mk = Process.Start("mkfifo", fifo)) mk.WaitForExit();
        try
        {
            foreach (var (path, problem) in new[]
            {
                ("/dev/zero", "larger than"), ("/dev/null", "empty scenario"), (fifo, "blocked"),
                (Path.GetTempPath(), "is a folder"), ("/nonexistent/s.yaml", "no such file"),
            })
            {
                var clock = Stopwatch.StartNew();
                var r = CliHarness.Hil("model", "simulate", path);
                Assert.That(r.Code, Is.EqualTo(2), $"{path}: {r.Err}");
                Assert.That(r.Err.Trim().Split('\n'), Has.Length.EqualTo(1), r.Err);
                Assert.That(r.Err, Does.Contain(problem), path);
                Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), path);
            }
        }
        finally
        {
            File.Delete(fifo);
        }
    }

    [TestCase("0")]
    [TestCase("-5")]
    [TestCase("many")]
    public void ABadStateBudgetIsRefused(string value)
    {
        var r = CliHarness.Hil("model", "explore", CliHarness.Repo("testsuites", "model", "total-minus-one.yaml"), "--max-states", value);
        Assert.That(r.Code, Is.EqualTo(2), r.Err);
        Assert.That(r.Err, Does.Contain("max-states"));
        Assert.That(r.Err, Does.Not.Contain("internal error"));
    }
}

/// <summary>Runs `hil` in process with its output captured, as a user sees it.</summary>
internal static class CliHarness
{
    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "HilHarness.sln"))) return d.FullName;
        throw new InvalidOperationException("repository root not found");
    }

    public static string Repo(params string[] parts) => Path.Combine([RepoRoot(), .. parts]);

    public static (int Code, string Out, string Err) Hil(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        using var o = new StringWriter();
        using var e = new StringWriter();
        Console.SetOut(o); Console.SetError(e);
        try { return (CliRunner.Run(CliRoot.Build(), args), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }
}

/// <summary>
/// `simulate` on large scenarios: each timeline row has a bounded size (the state names at most a
/// few waiters) and the output grows linearly with the calls, in text and in JSON (which streams).
/// </summary>
[NonParallelizable]
public class SimulateScalingTests
{
    private static string Scenario(int clients) =>
        "policy: mainline\nthreads: 2\nclients:\n" + string.Concat(Enumerable.Range(0, clients).Select(i => $"  - {{ name: c{i}, calls: [{{ at: {i % 7}, hold: 10 }}] }}\n"));

    private static (long Bytes, int LongestRow) Simulate(int clients, bool json)
    {
        var file = Path.Combine(Path.GetTempPath(), $"hil-scale-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(file, Scenario(clients));
        try
        {
            var r = json ? CliHarness.Hil("model", "simulate", file, "--json") : CliHarness.Hil("model", "simulate", file);
            Assert.That(r.Code, Is.EqualTo(0).Or.EqualTo(1), r.Err);
            // Timeline rows only: the closing result line lists every call's outcome once (linear, not per row).
            var rows = r.Out.Split('\n').Where(l => !json || l.StartsWith("{\"type\":\"event\"", StringComparison.Ordinal));
            return (r.Out.Length, rows.Max(l => l.Length));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public void OutputGrowsLinearlyWithTheCalls(bool json)
    {
        var small = Simulate(500, json);
        var large = Simulate(5000, json);
        TestContext.Out.WriteLine($"{(json ? "json" : "text")}: 500 clients {small.Bytes:N0} chars (longest row {small.LongestRow}), 5000 clients {large.Bytes:N0} chars (longest row {large.LongestRow})");
        Assert.That(large.LongestRow, Is.LessThan(1500), "a row's size does not grow with the scenario");
        Assert.That((double)large.Bytes / small.Bytes, Is.LessThan(12.0), "10x the calls, about 10x the output (it was ~100x)");
    }
}

/// <summary>explore stops at its memory budget as it does at its state budget: "incomplete", exit 1, the reason named.</summary>
[NonParallelizable]
public class ExploreBudgetTests
{
    [Test]
    public void TheMemoryBudgetEndsTheSearchAsIncomplete()
    {
        var scenario = Directory.EnumerateFiles(CliHarness.Repo("testsuites", "model", "bench"), "*.yaml").Order().First();
        var r = CliHarness.Hil("model", "explore", scenario, "--max-memory", "1");
        Assert.That(r.Code, Is.EqualTo(1), r.Out + r.Err);
        Assert.That(r.Out, Does.Contain("INCOMPLETE: memory budget reached (1 MiB of states"));
        var s = CliHarness.Hil("model", "explore", scenario, "--max-states", "1000");
        Assert.That(s.Out, Does.Contain("INCOMPLETE: state limit reached (1,000 states)"));
        var json = CliHarness.Hil("model", "explore", scenario, "--max-memory", "1", "--json");
        Assert.That(json.Out, Does.Contain("\"complete\":false").And.Contain("\"incomplete_because\":\"memory budget reached"));
    }
}
