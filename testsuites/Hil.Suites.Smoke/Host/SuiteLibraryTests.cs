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
    public void ABoardFileWithoutSuiteFactsIsRefusedWithFileLineAndField()
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
        Assert.That(t.SelectionError, Does.Contain($"{file}:4:").And.Contain("facts.optee_threads: missing"));
    }

    [Test]
    public void TheQemuBoardFilesStateTheirFacts()
    {
        QemuBoardsRegistration.Ensure();
        var mainline = SuiteFacts.FromBoardFile(BoardFileLoader.Load(Path.Combine(Boards, "qemu-optee.yaml")));
        var legacy = SuiteFacts.FromBoardFile(BoardFileLoader.Load(Path.Combine(Boards, "qemu-optee-6.1.yaml")));
        Assert.That(mainline, Is.EqualTo(new SuiteFacts("mainline", 2)));
        Assert.That(legacy, Is.EqualTo(new SuiteFacts("legacy", 2)));
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
