using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Hil.Cli.Tests;

/// <summary>
/// Malformed board files as lab engineers write them: every file of Corpus/boards gets from
/// `hil board check` either "ok" (exit 0) or its mistakes, each one line "file:line:column: field:
/// message" (exit 2) — never a stack trace, an internal error or a hang. FILE.expect beside each
/// file: "exit N"; for exit 2 "field F" (empty: any) and "line L" where one line is to blame.
/// </summary>
[NonParallelizable]
public class BoardFileCorpusTests
{
    private static string Corpus => CliHarness.Repo("harness", "tests", "Hil.Cli.Tests", "Corpus", "boards");

    public static IEnumerable<string> Files() =>
        Directory.EnumerateFiles(CliHarness.Repo("harness", "tests", "Hil.Cli.Tests", "Corpus", "boards"), "*.yaml")
            .Select(f => Path.GetFileNameWithoutExtension(f)!).Order(StringComparer.Ordinal);

    [Test]
    public void TheCorpusIsLargeEnough() => Assert.That(Files().Count(), Is.GreaterThanOrEqualTo(60));

    [TestCaseSource(nameof(Files))]
    public void EachBoardFileIsOkOrGetsClearLines(string name)
    {
        var file = Path.Combine(Corpus, name + ".yaml");
        var expect = File.ReadAllLines(Path.Combine(Corpus, name + ".expect"))
            .Select(l => l.Split(' ', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");
        var clock = Stopwatch.StartNew();
        var r = CliHarness.Hil("board", "check", file);
        var what = $"hil board check {name}.yaml: exit {r.Code}\n{r.Out}{r.Err}";
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), what);
        Assert.That(r.Err, Does.Not.Contain("internal error").And.Not.Contain("   at "), what);
        Assert.That(r.Code, Is.EqualTo(int.Parse(expect["exit"])), what);
        if (r.Code != 2) return;
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Is.Not.Empty, what);
        foreach (var line in lines)
            Assert.That(line, Does.Match($@"^hil: {Regex.Escape(file)}:\d+:\d+: [^:]+: \S"), what + " (not file:line:column: field: message)");
        if (expect.TryGetValue("field", out var field) && field.Length > 0)
            Assert.That(lines.Any(l => l.Contains($": {field}: ", StringComparison.Ordinal)), what + $" (no error names {field})");
        if (expect.TryGetValue("line", out var at))
            Assert.That(lines.Any(l => l.StartsWith($"hil: {file}:{at}:", StringComparison.Ordinal)), what + $" (no error on line {at})");
    }

    [Test]
    public void SpecialFilesAreRefusedAtOnce()
    {
        foreach (var (path, problem) in new[] { ("/dev/zero", "larger than"), ("/dev/null", ""), (Path.GetTempPath(), "folder") })
        {
            var clock = Stopwatch.StartNew();
            var r = CliHarness.Hil("board", "check", path);
            Assert.That(r.Code, Is.EqualTo(2), $"{path}: {r.Err}");
            Assert.That(r.Err, Does.Contain(problem).And.Not.Contain("internal error"), path);
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), path);
        }
    }
}
