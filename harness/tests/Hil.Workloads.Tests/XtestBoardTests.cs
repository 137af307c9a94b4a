using Hil.Workloads.Xtest;

namespace Hil.Workloads.Tests.OnBoard;

/// <summary>xtest on both kernels, run and parsed by the harness (timestamped per line on the board).</summary>
[TestFixture("qemu-optee")]
[TestFixture("qemu-optee-6.1")]
[NonParallelizable]
public class XtestBoardTests(string board)
{
    private WorkloadBoard _board = null!;
    private XtestRunner _xtest = null!;

    [OneTimeSetUp]
    public async Task BootAsync()
    {
        _board = await KmodBoards.GetAsync(board);
        _xtest = new XtestRunner(_board.Ssh, KmodTestSupport.Log);
    }

    private void Say(string text) => TestContext.Progress.WriteLine($"{board}: {text}");

    [Test]
    public async Task Regression1001_1009_1013ParseWithTheirCounts()
    {
        var run = await _xtest.RunAsync(new XtestOptions { Cases = ["1001", "1009", "1013"], Timeout = TimeSpan.FromMinutes(8) });
        var r = run.Report;
        foreach (var c in r.Cases)
            Say($"{c.Name} {c.Outcome}: {c.Subtests.Count} subtests, {c.Duration?.TotalSeconds:0.00} s{(c.Output.Count > 0 ? " | " + string.Join("; ", c.Output) : "")}");
        Say($"xtest: exit {run.ExitCode}, {run.Duration.TotalSeconds:0.0} s over SSH; summary {r.Summary}");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(run.Passed, Is.True, run.Output[^Math.Min(run.Output.Length, 3000)..]);
            Assert.That(r.Cases.Select(c => c.Name), Is.EqualTo(new[] { "regression_1001", "regression_1009", "regression_1013" }));
            Assert.That(r.Cases.Select(c => c.Subtests.Count), Is.EqualTo(new[] { 2, 4, 50 }));
            Assert.That(r.Case("1013").Subtests.Count(s => s.Depth == 2), Is.EqualTo(48));
            Assert.That(r.Case("1013").Output, Does.Contain("Number of parallel threads: 3"));
            Assert.That(r.Summary, Is.Not.Null);
            Assert.That((r.Summary!.Cases, r.Summary.CasesFailed, r.Summary.SubtestsFailed), Is.EqualTo((3, 0, 0)));
            Assert.That(r.Results.Select(x => x.Outcome), Is.All.EqualTo(XtestOutcome.Passed));
            // TEE_Wait holds for the time asked: "TEE Wait 2s" cannot be quicker than 2 s.
            var wait2s = r.Case("1009").Subtests.Single(s => s.Title == "TEE Wait 2s");
            Assert.That(wait2s.Duration!.Value.TotalSeconds, Is.InRange(1.95, 10.0));
            Assert.That(r.Cases.All(c => c.Duration is not null), "every case timed");
        }
    }

    [Test]
    public async Task Pkcs11CasesFailOnDebianAndTheirFailureLinesAreKept()
    {
        // Debian's optee-os ships no PKCS#11 TA: this is why the harness defaults to -t regression.
        var run = await _xtest.RunAsync(new XtestOptions { Suites = ["pkcs11"], Cases = ["1001"], Timeout = TimeSpan.FromMinutes(2) });
        var c = run.Report.Case("pkcs11_1001");
        Say($"pkcs11_1001 {c.Outcome}: {string.Join(" | ", c.FailureLines)}");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(run.Passed, Is.False);
            Assert.That(run.ExitCode, Is.Not.Zero);
            Assert.That(run.TimedOut, Is.False);
            Assert.That(c.Outcome, Is.EqualTo(XtestOutcome.Failed));
            Assert.That(c.FailureLines, Has.Some.Contains("CKR_DEVICE_ERROR"));
            Assert.That(run.Report.Summary!.CasesFailed, Is.EqualTo(1));
            Assert.That(run.Report.Results.Single(x => x.Name == "pkcs11_1001").FirstError, Does.Match(@"pkcs11_1000\.c:\d+$"));
        }
    }
}
