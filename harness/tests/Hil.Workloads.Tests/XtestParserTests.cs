using Hil.Workloads.Xtest;

namespace Hil.Workloads.Tests;

/// <summary>xtest output as the QEMU boards printed it (Fixtures/xtest), parsed into cases, subtests and failures.</summary>
public class XtestParserTests
{
    private const string Passing612 = "qemu-optee-6.12.regression-1001-1003-1009-1013-6016.txt";
    private const string Failing61 = "qemu-optee-6.1.regression+pkcs11-1001-1004.failures.txt";
    private const string Stamped61 = "qemu-optee-6.1.regression-1009-1001.stamped.txt";

    [Test]
    public void PassingRunOn612HasEveryCaseAndSubtest()
    {
        var r = XtestOutputParser.Parse(KmodTestSupport.XtestFixture(Passing612));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(r.Completed, Is.True);
            Assert.That(r.AllPassed, Is.True);
            Assert.That(r.Cases.Select(c => c.Name), Is.EqualTo(new[] { "regression_1001", "regression_1003", "regression_1009", "regression_1013", "regression_6016" }));
            Assert.That(r.Cases.Select(c => c.Subtests.Count), Is.EqualTo(new[] { 2, 0, 4, 50, 2 }));
            Assert.That(r.Summary, Is.EqualTo(new XtestSummary(1308, 0, 5, 0, 103)));
            Assert.That(r.Results.Select(x => x.Name), Is.EqualTo(r.Cases.Select(c => c.Name)));
            Assert.That(r.Results.All(x => x.Outcome == XtestOutcome.Passed && x.FirstError is null));
        }
    }

    [Test]
    public void NestedSubtestsOf1013KeepTheirDepth()
    {
        var c = XtestOutputParser.Parse(KmodTestSupport.XtestFixture(Passing612)).Case("1013");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(c.Title, Is.EqualTo("Test concurrency with concurrent TA"));
            Assert.That((c.Suite, c.Id), Is.EqualTo(("regression", "1013")));
            Assert.That(c.Subtests.Count(s => s.Depth == 1), Is.EqualTo(2));
            Assert.That(c.Subtests.Count(s => s.Depth == 2), Is.EqualTo(48));
            Assert.That(c.Subtests.Single(s => s.Name == "regression_1013.2.17").Title, Is.EqualTo("Busy loop repeat 10000"));
            Assert.That(c.PassedSubtests, Is.EqualTo(50));
            // The 3 client threads on 2 secure threads: xtest's own statistics land in the case output.
            Assert.That(c.Output, Does.Contain("Number of parallel threads: 3"));
            Assert.That(c.Output.Any(l => l.StartsWith("Mean concurrency: ", StringComparison.Ordinal)));
            Assert.That(c.FailureLines, Is.Empty);
            Assert.That(c.Duration, Is.Null, "no timestamps in this capture");
        }
        var mutex = XtestOutputParser.Parse(KmodTestSupport.XtestFixture(Passing612)).Case("regression_1003");
        Assert.That((mutex.Outcome, mutex.Subtests.Count, mutex.Output.Count), Is.EqualTo((XtestOutcome.Passed, 0, 5)));
    }

    [Test]
    public void FailingPkcs11CasesCarryTheirFailureLines()
    {
        var r = XtestOutputParser.Parse(KmodTestSupport.XtestFixture(Failing61));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(r.AllPassed, Is.False);
            Assert.That(r.Summary, Is.EqualTo(new XtestSummary(19, 6, 4, 2, 135)));
            Assert.That(r.Cases.Select(c => (c.Name, c.Outcome)), Is.EqualTo(new[]
            {
                ("regression_1001", XtestOutcome.Passed), ("regression_1004", XtestOutcome.Passed),
                ("pkcs11_1001", XtestOutcome.Failed), ("pkcs11_1004", XtestOutcome.Failed),
            }));
            var p1001 = r.Case("pkcs11_1001");
            Assert.That(p1001.Subtests, Is.Empty);
            Assert.That(p1001.FailureLines, Is.EqualTo(new[] { "./host/xtest/pkcs11_1000.c:244: rv has an unexpected value: 0x30 = CKR_DEVICE_ERROR, expected 0x0 = CKR_OK" }));
            Assert.That(p1001.Output, Does.Contain("ERR [144] ckteec:ckteec_invoke_init:304: TEEC open session failed ffff0008 from 3"));
            var p1004 = r.Case("pkcs11_1004");
            Assert.That(p1004.FailedSubtests, Is.EqualTo(5));
            Assert.That(p1004.Subtests[2].Name, Is.EqualTo("regression_1004.3".Replace("regression", "pkcs11", StringComparison.Ordinal)));
            Assert.That(p1004.Subtests[2].FailureLines, Is.EqualTo(new[] { "./host/xtest/pkcs11_1000.c:1267: rv has an unexpected value: 0x30 = CKR_DEVICE_ERROR, expected 0x0 = CKR_OK" }));
            Assert.That(p1004.FailureLines, Has.Count.EqualTo(5));
            Assert.That(r.Case("regression_1004").Subtests.Select(s => s.Outcome), Is.All.EqualTo(XtestOutcome.Passed));
            Assert.That(r.Results.Single(x => x.Name == "pkcs11_1004.3").FirstError, Is.EqualTo("./host/xtest/pkcs11_1000.c:1267"));
        }
        // "1001" names a case in both suites here.
        Assert.Throws<KeyNotFoundException>(() => r.Case("1001"));
    }

    [Test]
    public void TimestampsGiveCaseAndSubtestDurations()
    {
        var r = XtestOutputParser.Parse(KmodTestSupport.XtestFixture(Stamped61));
        var wait = r.Case("1009");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(r.AllPassed, Is.True);
            Assert.That(r.Summary, Is.EqualTo(new XtestSummary(17, 0, 2, 0, 106)));
            Assert.That(wait.Subtests.Select(s => s.Title), Is.EqualTo(new[] { "TEE Wait 0.1s", "TEE Wait 0.5s", "TEE Wait 2s cancel", "TEE Wait 2s" }));
            Assert.That(wait.Duration!.Value.TotalSeconds, Is.EqualTo(7.31).Within(0.001));
            Assert.That(wait.Subtests[3].Duration!.Value.TotalSeconds, Is.EqualTo(2.86).Within(0.001));
            Assert.That(r.Case("1001").Duration!.Value.TotalSeconds, Is.EqualTo(0.11).Within(0.001));
        }
    }

    [Test]
    public void ACutShortRunIsIncomplete()
    {
        var text = KmodTestSupport.XtestFixture(Passing612);
        var cut = text[..text.IndexOf("  regression_1013.2.17 OK", StringComparison.Ordinal)];
        var r = XtestOutputParser.Parse(cut);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(r.Completed, Is.False);
            Assert.That(r.Summary, Is.Null);
            Assert.That(r.AllPassed, Is.False);
            Assert.That(r.Case("1013").Outcome, Is.EqualTo(XtestOutcome.Incomplete));
            Assert.That(r.Case("1013").Subtests.Single(s => s.Name == "regression_1013.2.17").Outcome, Is.EqualTo(XtestOutcome.Incomplete));
            Assert.That(r.Case("1009").Outcome, Is.EqualTo(XtestOutcome.Passed));
        }
    }

    [Test]
    public void OptionsBecomeQuotedArguments()
    {
        var o = new XtestOptions { Cases = ["1001", "regression_1013"], Exclude = ["1008"], Timeout = TimeSpan.FromSeconds(90.2) };
        Assert.That(o.Arguments(), Is.EqualTo(new[] { "-l", "0", "-t", "regression", "-x", "1008", "1001", "regression_1013" }));
        var line = XtestRunner.CommandLine(o);
        Assert.That(line, Does.StartWith("{ timeout 91 xtest -l 0 -t regression -x 1008 1001 regression_1013; echo \"hil-xtest-exit=$?\"; } 2>&1 | while IFS= read -r l;"));
        Assert.That(XtestRunner.CommandLine(o with { Timestamps = false }), Does.EndWith("} 2>&1"));
        Assert.That((new XtestOptions { Suites = ["regression", "pkcs11"] }).Arguments(), Does.Contain("regression+pkcs11"));
    }

    [TestCase("-x")]
    [TestCase("1001;reboot")]
    [TestCase("$(id)")]
    [TestCase("")]
    public void BadCaseNamesAreRefused(string name)
    {
        Assert.Throws<ArgumentException>(() => new XtestOptions { Cases = [name] }.Arguments());
    }

    [Test]
    public void BadSuitesAndLevelsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => new XtestOptions { Suites = ["regression+pkcs11"] }.Arguments());
        Assert.Throws<ArgumentException>(() => new XtestOptions { Suites = [] }.Arguments());
        Assert.Throws<ArgumentOutOfRangeException>(() => new XtestOptions { Level = 16 }.Arguments());
    }
}
