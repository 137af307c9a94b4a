using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Boards.Watch;
using Hil.Suites.Common;

namespace Hil.Suites.Smoke.Host;

/// <summary>
/// The suite library's decisions that need no board: which boards HIL_BOARDS selects (and how a
/// mistake is reported), the facts a board file must state, how failures are classified and
/// labelled. Category "host": <c>hil run</c> leaves them out of its per-board table; run-tests runs them.
/// </summary>
[TestFixture, Category("host")]
public sealed class SuiteLibraryTests
{
    private string _dir = "";

    [SetUp]
    public void MakeDir() => _dir = Directory.CreateTempSubdirectory("hil-suite-lib-").FullName;

    [TearDown]
    public void RemoveDir() => Directory.Delete(_dir, recursive: true);

    private static string Boards => RepoLayout.BoardsDirectory ?? throw new InvalidOperationException("tests run inside the checkout");

    [Test]
    public void UnsetSelectsBothKernelsOfTheQemuBoard()
    {
        var targets = BoardSelection.Parse(null, Boards, _dir);
        Assert.That(targets.Select(t => t.Name), Is.EqualTo(new[] { "qemu-optee", "qemu-optee-6.1" }));
        Assert.That(targets.All(t => t.IsValid && File.Exists(t.BoardFile)), Is.True);
    }

    [Test]
    public void NamesAndPathsMix()
    {
        var targets = BoardSelection.Parse($" qemu-optee-6.1 , {Path.Combine(Boards, "qemu-optee.yaml")}", Boards, _dir);
        Assert.That(targets.Select(t => (t.Name, t.IsValid)), Is.EqualTo(new[] { ("qemu-optee-6.1", true), ("qemu-optee", true) }));
    }

    [Test]
    public void AnUnknownNameFailsItsFixtureWithTheKnownBoards()
    {
        var t = BoardSelection.Parse("qemu-optee,nosuch", Boards, _dir)[1];
        Assert.That(t.IsValid, Is.False);
        Assert.That(t.SelectionError, Does.Contain("HIL_BOARDS item 2 'nosuch': no board file").And.Contain("known boards: ").And.Contain("qemu-optee-6.1"));
    }

    [Test]
    public void EmptyItemsAndDuplicatesAreMistakes()
    {
        var targets = BoardSelection.Parse("qemu-optee,,qemu-optee", Boards, _dir);
        Assert.That(targets[1].SelectionError, Does.Contain("item 2: empty board name"));
        Assert.That(targets[2].SelectionError, Does.Contain("selected twice"));
        Assert.That(targets.Select(t => t.Name).Distinct().Count(), Is.EqualTo(3), "fixture names stay unique");
    }

    [Test]
    public void AMissingBoardFilePathIsNamed()
    {
        var t = BoardSelection.Parse("lab/none.yaml", Boards, _dir).Single();
        Assert.That(t.SelectionError, Does.Contain($"board file {Path.Combine(_dir, "lab/none.yaml")} does not exist"));
    }

    [Test]
    public void ABoardFileWithAnUnknownPolicyIsRefusedWithFileLineAndField()
    {
        var file = Path.Combine(_dir, "lab-board.yaml");
        File.WriteAllText(file, """
            name: lab-board
            console:
              device: /dev/ttyUSB0
            facts:
              soc: imx8mp
              kernel_policy: v10
            """);
        var t = BoardSelection.Parse(file, Boards, _dir).Single();
        Assert.That(t.SelectionError, Does.Contain($"{file}:6:").And.Contain("facts.kernel_policy: 'v10' is not a policy suites know"));
    }

    [Test]
    public void BoardFileFactsAreOptionalExpectations()
    {
        var file = Path.Combine(_dir, "lab-board.yaml");
        File.WriteAllText(file, """
            name: lab-board
            console:
              device: /dev/ttyUSB0
            facts:
              soc: imx8mp
            """);
        var t = BoardSelection.Parse(file, Boards, _dir).Single();
        Assert.That(t.SelectionError, Is.Null, "policy and thread count are measured on the board; a board file need not state them");
        Assert.That(SuiteFacts.FromBoardFile(BoardFileLoader.Load(file)), Is.EqualTo(new SuiteFacts(null, null)));
    }

    [Test]
    public void TheQemuBoardFilesStateTheirExpectations()
    {
        QemuBoardsRegistration.Ensure();
        var spec = BoardFileLoader.Load(Path.Combine(Boards, "qemu-optee.yaml"));
        var mainline = SuiteFacts.FromBoardFile(spec);
        var legacy = SuiteFacts.FromBoardFile(BoardFileLoader.Load(Path.Combine(Boards, "qemu-optee-6.1.yaml")));
        Assert.That((mainline.KernelPolicy, mainline.OpteeThreads), Is.EqualTo(("mainline", (int?)2)));
        Assert.That((legacy.KernelPolicy, legacy.OpteeThreads), Is.EqualTo(("legacy", (int?)2)));
        Assert.That(mainline.ThreadsFrom, Does.Match(@"qemu-optee\.yaml:\d+: facts\.optee_threads$"));
        Assert.That(mainline.PolicyFrom, Does.Match(@"qemu-optee\.yaml:\d+: facts\.kernel_policy$"));
    }

    private static Fact Threads(string? measured, string? expected) => new()
    {
        Name = "OP-TEE thread count", Measured = measured, MeasuredFrom = measured is null ? null : "firmware: OPTEE_SMC_GET_THREAD_COUNT",
        NotMeasured = measured is null ? "hil_cq could not be loaded: no kit" : null,
        Expected = expected, ExpectedFrom = expected is null ? null : "boards/lab.yaml:9: facts.optee_threads",
    };

    private static BoardFacts Facts(Fact threads, string record) => new()
    {
        Board = "lab", BoardFile = "boards/lab.yaml", Source = "real board", Session = 1, ReadAtUtc = DateTimeOffset.UnixEpoch,
        Policy = new Fact { Name = "kernel policy", Measured = "mainline", MeasuredFrom = "driver: optee.ko" },
        Threads = threads, DriverThreadsRecord = record,
    };

    [Test]
    public void AMeasuredFactContradictingTheBoardFileIsAProductFailureNamingBothValues()
    {
        var ex = Assert.Throws<ProductFailureException>(() => Facts(Threads("4", "2"), "absent").RequireThreads());
        Assert.That(ex!.Message, Is.EqualTo("OP-TEE thread count: measured 4 on the board, but boards/lab.yaml:9: facts.optee_threads expects 2"));
        Assert.That(ex.Evidence, Has.Some.Contains("OPTEE_SMC_GET_THREAD_COUNT"));
    }

    [Test]
    public void TheFirmwareAndTheDriverDisagreeing_IsAProductFailureNamingBoth()
    {
        var ex = Assert.Throws<ProductFailureException>(() => Facts(Threads("4", null), "2").RequireThreads());
        Assert.That(ex!.Message, Does.Contain("OP-TEE reports 4 secure threads, but the OP-TEE driver counts 2"));
    }

    [Test]
    public void AFactThatWasNotMeasuredIsNotReplacedByTheBoardFile()
    {
        var ex = Assert.Throws<HilException>(() => Facts(Threads(null, "2"), "absent").RequireThreads());
        Assert.That(ex!.Message, Does.Contain("OP-TEE thread count could not be measured on the board: hil_cq could not be loaded"));
    }

    [Test]
    public void AgreeingFactsAreUsed_AndFactsTxtSaysWhereEachCameFrom()
    {
        var facts = Facts(Threads("2", "2"), "2");
        Assert.That(facts.RequireThreads(), Is.EqualTo(2));
        Assert.That(Facts(Threads("2", null), "unavailable").RequireThreads(), Is.EqualTo(2), "no expectation, a driver that does not count");
        facts.WriteTo(_dir);
        var txt = File.ReadAllText(Path.Combine(_dir, "facts.txt"));
        Assert.That(txt, Does.Contain("kernel policy:  mainline — measured (driver: optee.ko); the board file states none"));
        Assert.That(txt, Does.Contain("threads:        2 — measured (firmware: OPTEE_SMC_GET_THREAD_COUNT); boards/lab.yaml:9: facts.optee_threads expects 2"));
        Assert.That(File.ReadAllText(Path.Combine(_dir, "facts.json")), Does.Contain("\"measured_from\": \"firmware: OPTEE_SMC_GET_THREAD_COUNT\""));
    }

    [Test]
    public void TheFactsCommandsOutputSplitsIntoItsSections()
    {
        var sections = FactsReader.Sections("noise\n@@hil-facts kernel\nrelease=6.12\nsym=optee_cq_init\n@@hil-facts firmware\nthread_count: 2\r\nconduit: smc\n@@hil-facts record\n2\n");
        Assert.That(sections.Keys, Is.EquivalentTo(new[] { "kernel", "firmware", "record" }));
        Assert.That(sections["firmware"], Is.EqualTo("thread_count: 2\nconduit: smc\n"));
        Assert.That(sections["record"].Trim(), Is.EqualTo("2"));
        Assert.That(FactsReader.Script(moduleLoaded: true), Does.Contain("cat /sys/kernel/debug/hil_cq/firmware").And.Contain("@@hil-facts record"));
        Assert.That(FactsReader.Script(moduleLoaded: false), Does.Not.Contain("hil_cq/firmware"));
    }

    [TestCase(FailureClass.Infrastructure, "[infrastructure] ")]
    [TestCase(FailureClass.Product, "[product] ")]
    [TestCase(FailureClass.Test, "[test] ")]
    public void EveryFailureMessageStartsWithItsClass(FailureClass c, string prefix)
    {
        var text = FailureText.Format(new Failure(c, "it broke", ["line 1", "line 2"], c == FailureClass.Infrastructure));
        Assert.That(text, Does.StartWith(prefix + "it broke\nevidence:\n  line 1\n  line 2"));
        Assert.That(FailureText.ClassOf(text), Is.EqualTo(c));
        Assert.That(FailureText.ClassOf("OneTimeSetUp: " + text), Is.EqualTo(c));
        Assert.That(FailureText.ClassOf("Expected: 2 But was: 1"), Is.Null);
    }

    [Test]
    public void ClassificationOfWhatABodyThrows()
    {
        var budget = TimeSpan.FromSeconds(5);
        var assertion = new AssertionException("Expected: 2 But was: 1");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(BoardTestRunner.Classify(assertion, null, false, budget).Class, Is.EqualTo(FailureClass.Product), "a failed assertion: the board did not do what is expected");
            Assert.That(BoardTestRunner.Classify(new AssertionException("[test] wrong fixture data"), null, false, budget),
                Is.EqualTo(new Failure(FailureClass.Test, "wrong fixture data", [], false)), "a test naming its own mistake");
            Assert.That(BoardTestRunner.Classify(new OperationCanceledException(), null, true, budget).Class, Is.EqualTo(FailureClass.Product), "a spent budget: a hang");
            Assert.That(BoardTestRunner.Classify(new LinkLostException("gone"), null, false, budget), Is.EqualTo(new Failure(FailureClass.Infrastructure, "gone", [], true)));
            Assert.That(BoardTestRunner.Classify(new IOException("reset"), null, false, budget).Retryable, Is.True);
            Assert.That(BoardTestRunner.Classify(new DirectoryNotFoundException("no results folder"), null, false, budget),
                Has.Property(nameof(Failure.Class)).EqualTo(FailureClass.Test).And.Property(nameof(Failure.Retryable)).False, "a host path the test got wrong is not the lab's");
            Assert.That(BoardTestRunner.Classify(new ProductFailureException("panic"), null, false, budget).Retryable, Is.False);
            Assert.That(BoardTestRunner.Classify(new NullReferenceException(), null, false, budget).Class, Is.EqualTo(FailureClass.Test), "a harness bug");
            Assert.That(BoardTestRunner.Classify(new HostKeyRejectedException("changed"), null, false, budget).Retryable, Is.False, "a changed host key stays changed");
        }
    }

    [Test]
    public void ConsoleEventsDecideTheClassBeforeTheTransport()
    {
        var panic = new ConsoleEvent(ConsoleEventKind.KernelPanic, "console", DateTimeOffset.UtcNow,
            "[   42.1] Kernel panic - not syncing: sysrq triggered crash", ["[   42.0] sysrq: Trigger a crash", "[   42.1] Kernel panic - not syncing: sysrq triggered crash"]);
        var warning = new ConsoleEvent(ConsoleEventKind.KernelWarning, "console", DateTimeOffset.UtcNow, "WARNING: CPU: 0 PID: 1 at x.c:1", []);
        var dropped = new Renci.SshNet.Common.SshConnectionException("An established connection was aborted by the server.");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(BoardTestRunner.Classify(dropped, null, false, TimeSpan.FromSeconds(5)).Class, Is.EqualTo(FailureClass.Infrastructure), "without console events a dropped connection is the lab's");
            var f = BoardTestRunner.ConsoleEvents([panic], dropped)!;
            Assert.That(f.Class, Is.EqualTo(FailureClass.Product), "the panic decides");
            Assert.That(f.Retryable, Is.False, "a product failure is never retried");
            Assert.That(f.Message, Does.StartWith("KernelPanic on console").And.Contain("the test then failed with: An established connection"));
            Assert.That(f.Evidence, Does.Contain("[   42.0] sysrq: Trigger a crash"));
            Assert.That(BoardTestRunner.ConsoleEvents([warning, panic], new OperationCanceledException())!.Message,
                Does.StartWith("KernelPanic").And.Contain("+1 more").And.Not.Contain("then failed"), "the fatal event leads; a cancelled body adds nothing");
            Assert.That(BoardTestRunner.ConsoleEvents([warning], null)!.Class, Is.EqualTo(FailureClass.Product), "a WARNING fails a test that passed");
            Assert.That(BoardTestRunner.ConsoleEvents([], dropped), Is.Null);
        }
    }

    [Test]
    public void APassOnRetrySaysSoWithTheFirstAttemptsFailure()
    {
        var infra = new Failure(FailureClass.Infrastructure, "board lost: power lost: QEMU pid 7 exited with code 137", [], true);
        var retried = new BoardTestOutcome("T", "b", [new AttemptRecord(1, 1, infra, TimeSpan.Zero, []), new AttemptRecord(2, 2, null, TimeSpan.Zero, [])]);
        var plain = new BoardTestOutcome("T", "b", [new AttemptRecord(1, 1, null, TimeSpan.Zero, [])]);
        var failed = new BoardTestOutcome("T", "b", [new AttemptRecord(1, 1, infra, TimeSpan.Zero, []), new AttemptRecord(2, 2, infra, TimeSpan.Zero, [])]);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(retried.PassedOnRetry, Is.True);
            Assert.That(retried.RetryNote, Is.EqualTo($"{RetryConvention.PassedOnRetryMarker} (attempt 2 of 2); attempt 1 (session 1) failed: [infrastructure] {infra.Message}"));
            Assert.That(plain.RetryNote, Is.Null);
            Assert.That(failed.PassedOnRetry, Is.False);
            Assert.That(failed.RetryNote, Is.Null);
        }
    }

    [Test, NonParallelizable]
    public void NoRetryTurnsEveryRetryOff()
    {
        var before = Environment.GetEnvironmentVariable(RetryConvention.NoRetryVariable);
        try
        {
            Environment.SetEnvironmentVariable(RetryConvention.NoRetryVariable, "1");
            Assert.That(RetryPolicy.Retries(new BoardTestOptions { InfrastructureRetries = 3 }), Is.Zero);
            Environment.SetEnvironmentVariable(RetryConvention.NoRetryVariable, "0");
            Assert.That(RetryPolicy.Retries(new BoardTestOptions { InfrastructureRetries = 3 }), Is.EqualTo(3));
        }
        finally
        {
            Environment.SetEnvironmentVariable(RetryConvention.NoRetryVariable, before);
        }
    }

    [Test]
    public void ResultsNamesAreSafe()
    {
        Assert.That(SuiteResults.Kebab("SystemThreads"), Is.EqualTo("system-threads"));
        Assert.That(SuiteResults.Kebab("Smoke"), Is.EqualTo("smoke"));
        Assert.That(SuiteResults.SafeName("Case(\"a b\", 2)"), Is.EqualTo("Case_a_b_2"));
    }
}

/// <summary>Board files naming the qemu power driver load only once it is registered.</summary>
internal static class QemuBoardsRegistration
{
    public static void Ensure() => Hil.Qemu.Board.QemuBoards.Register();
}
