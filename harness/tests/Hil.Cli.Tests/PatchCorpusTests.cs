using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Hil.Cli.Tests;

/// <summary>
/// The patch corpus on the real QEMU board, as a reviewer would run it: `hil patch run --each
/// testsuites/patches/*.patch`. The control must conform to mainline only, the v9 design to v9 and
/// not mainline, and every bug patch must be caught (mutation score 100%). The verdicts come from
/// the suites' tests and the model's judgement of every trace, never from knowing these files.
/// </summary>
[TestFixture, NonParallelizable, Category("board")]
public class PatchCorpusTests
{
    [Test]
    public void Corpus_ControlIsMainline_V9IsV9_EveryBugPatchIsCaught()
    {
        var patches = Directory.GetFiles(CliHarness.Repo("testsuites", "patches"), "*.patch").Order().ToList();
        var results = CliHarness.Repo("artifacts", "patch-corpus");
        if (Directory.Exists(results)) Directory.Delete(results, recursive: true);
        var (code, output) = RunHil(["patch", "run", "--each", .. patches, "--instances", "2", "--control-runs", "5", "--results", results], TimeSpan.FromMinutes(40));
        TestContext.Out.WriteLine(output);
        var report = Path.Combine(results, "patch-report.md");
        if (File.Exists(report)) TestContext.AddTestAttachment(report, "the patch run's report");

        var bugs = patches.Count(p => Path.GetFileName(p).StartsWith("bug-", StringComparison.Ordinal));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ConformsTo(output, "control"), Is.EqualTo("mainline"), "the control conforms to mainline only");
            Assert.That(ConformsTo(output, "v9-one-reserved-thread"), Does.Contain("v9").And.Not.Match(@"\bmainline\b(?!-)"), "the v9 design conforms to v9, not mainline");
            Assert.That(output, Does.Contain($"mutation score: {bugs}/{bugs} (100%)"), "every bug patch is caught");
            Assert.That(output, Does.Contain("false alarms: 0/5 control runs"), "the stock driver raises no alarm over 5 full passes");
            Assert.That(code, Is.Zero, "hil patch run's verdict");
        }
    }

    /// <summary>"DRIVER: n/m tests passed, k traces; conforms to: P, Q" → "P, Q".</summary>
    private static string ConformsTo(string output, string driver) =>
        Regex.Match(output, $@"^{Regex.Escape(driver)}: .*; conforms to: (.*)$", RegexOptions.Multiline) is { Success: true } m ? m.Groups[1].Value.Trim() : "(not in the output)";

    /// <summary>The CLI this test project was built with, as its own process (its progress goes to the test log as it comes).</summary>
    private static (int Code, string Output) RunHil(IReadOnlyList<string> args, TimeSpan timeout)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "hil.dll");
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = CliHarness.RepoRoot() };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var all = new System.Text.StringBuilder();
        void Pump(StreamReader r)
        {
            while (r.ReadLine() is { } line)
            {
                lock (all) all.AppendLine(line);
                TestContext.Progress.WriteLine($"[patch corpus] {line}");
            }
        }
        var o = Task.Run(() => Pump(p.StandardOutput));
        var e = Task.Run(() => Pump(p.StandardError));
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"hil patch run did not finish in {timeout.TotalMinutes:0} min");
        }
        Task.WaitAll(o, e);
        return (p.ExitCode, all.ToString());
    }
}
