using System.CommandLine;
using System.Diagnostics;
using Hil.Cli;
using Hil.Cli.Commands;

namespace Hil.Cli.Tests;

/// <summary>
/// Bad command lines for every command: exit 2 and one clear line (or a few, one per parser
/// complaint, plus the hint), nothing started — never a stack trace or an internal error.
/// </summary>
[NonParallelizable]
public class CliFlagsTests
{
    private static (int Code, string Out, string Err) Hil(params string[] args) => CliHarness.Hil(args);

    private static string Scenario => CliHarness.Repo("testsuites", "model", "total-minus-one.yaml");
    private static string Trace => Directory.EnumerateFiles(CliHarness.Repo("harness", "tests", "Hil.Model.Tests", "Traces"), "*.jsonl").First();

    public static IEnumerable<TestCaseData> BadCommandLines()
    {
        TestCaseData Case(string why, params string[] args) => new TestCaseData((object)args).SetName($"{why}: hil {string.Join(' ', args)}");
        yield return Case("unknown command", "frobnicate");
        yield return Case("unknown subcommand", "model", "frobnicate");
        yield return Case("unknown option", "model", "simulate", "--frob");
        yield return Case("missing file", "model", "simulate");
        yield return Case("two files", "model", "simulate", "a.yaml", "b.yaml");
        yield return Case("unknown policy", "model", "simulate", "--policy", "v99", "x.yaml");
        yield return Case("policy without value", "model", "explore", "x.yaml", "--policy");
        yield return Case("state budget not a number", "model", "explore", "x.yaml", "--max-states", "lots");
        yield return Case("state budget zero", "model", "explore", "x.yaml", "--max-states", "0");
        yield return Case("state budget negative", "model", "explore", "x.yaml", "--max-states", "-1");
        yield return Case("state budget overflow", "model", "explore", "x.yaml", "--max-states", "99999999999999999999999");
        yield return Case("threads not a number", "model", "check-trace", "t.jsonl", "--threads", "two");
        yield return Case("threads zero", "model", "check-trace", "t.jsonl", "--threads", "0");
        yield return Case("threads negative", "model", "check-trace", "t.jsonl", "--threads", "-1");
        yield return Case("threads beyond any OP-TEE", "model", "check-trace", "t.jsonl", "--threads", "1000");
        yield return Case("memory budget zero", "model", "explore", "x.yaml", "--max-memory", "0");
        yield return Case("board check without file", "board", "check");
        yield return Case("board check of a missing file", "board", "check", "/nonexistent/board.yaml");
        yield return Case("run: unknown suite", "run", "--suite", "nightly");
        yield return Case("run: empty suite", "run", "--suite", "");
        yield return Case("run: unknown board", "run", "--board", "no-such-board");
        yield return Case("run: board name with a slash-less odd name", "run", "--board", "qemu optee");
        yield return Case("run: missing board file", "run", "--board", "/nonexistent/x.yaml");
        yield return Case("run: results is a file", "run", "--results", "/etc/passwd");
        yield return Case("run: a stray argument", "run", "everything");
        yield return Case("run: a board twice", "run", "--board", "qemu-optee", "--board", "qemu-optee");
        yield return Case("run: negative lease wait", "run", "--lease-wait", "-1");
        yield return Case("run: lease wait not a number", "run", "--lease-wait", "soon");
        yield return Case("run: no board at once", "run", "--parallel", "0");
        yield return Case("lease hold without a board", "lease", "hold");
        yield return Case("lease hold: a board name that is a path", "lease", "hold", "../etc/passwd");
        yield return Case("lease hold: negative wait", "lease", "hold", "lab-1", "--wait", "-5");
        yield return Case("bench: unknown benchmark", "bench", "nothing");
    }

    [TestCaseSource(nameof(BadCommandLines))]
    public void ABadCommandLineIsRefusedClearly(string[] args)
    {
        // Paths in the cases stand for real files where the file itself is not the mistake.
        var real = args.Select(a => a == "x.yaml" ? Scenario : a == "t.jsonl" ? Trace : a).ToArray();
        var clock = Stopwatch.StartNew();
        var r = Hil(real);
        var what = $"hil {string.Join(' ', real)}: exit {r.Code}\n{r.Out}{r.Err}";
        Assert.That(r.Code, Is.EqualTo(2), what);
        Assert.That(r.Err, Does.StartWith("hil"), what);
        Assert.That(r.Err, Does.Not.Contain("internal error").And.Not.Contain("   at "), what);
        Assert.That(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.LessThanOrEqualTo(3), what);
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), what);
    }
}
