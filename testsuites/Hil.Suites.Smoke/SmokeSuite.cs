using System.Diagnostics;
using Hil.Boards.Failures;
using Hil.Boards.Shell;
using Hil.Boards.Ssh;
using Hil.Suites.Common;
using Hil.Workloads.Xtest;

namespace Hil.Suites.Smoke;

/// <summary>
/// Is the board fit for the system-thread suite? Per board: a shell over serial and over SSH
/// (host key pinned), the TEE device, tee-supplicant, xtest 1001 + 4001, the facts measured at
/// boot (the driver's policy, OP-TEE's thread count) against the board file and each other, consoles free of panics/Oopses/OP-TEE aborts; and the harness's own
/// promise that a board lost mid-test is an infrastructure failure followed by a fresh board.
/// </summary>
[TestFixtureSource(typeof(BoardSelection), nameof(BoardSelection.Fixtures))]
// Tests run in this order (each after the previous one, whatever its result): the console check
// comes last so that it covers the whole suite, the fault injection after the ordinary tests.
[NonParallelizable]
public sealed class SmokeSuite(BoardTarget target) : BoardSuite(target)
{
    private static readonly TimeSpan Short = TimeSpan.FromSeconds(20);
    private const string BootIdFile = "/proc/sys/kernel/random/boot_id";

    [Test]
    public Task LoginOverSerial_ConsoleShellIsRoot() => OnBoardAsync(async t =>
    {
        var r = await t.Board.Shell.RunAsync($"id -u; cat {BootIdFile}; echo $$", Short, t.Token);
        Assert.That(r.ExitCode, Is.Zero, r.Output);
        var lines = Lines(r.Output);
        Assert.That(lines, Has.Count.EqualTo(3), r.Output);
        Assert.That(lines[0], Is.EqualTo("0"), "the console shell runs as root");
        Assert.That(lines[1], Does.Match("^[0-9a-f-]{36}$"), "boot id");
        t.Note($"console shell on {t.Board.Console.Address}: uid 0, shell pid {lines[2]}, boot {lines[1]}; {t.Board.Shell.Stats}");
    });

    [Test, DependsOnTest(nameof(LoginOverSerial_ConsoleShellIsRoot), AllowFailure = true)]
    public Task LoginOverSsh_HostKeyPinned_SameBoardAsTheConsole() => OnBoardAsync(async t =>
    {
        var ssh = t.Board.Spec.Ssh ?? throw new TestErrorException($"{Target.BoardFile}: no ssh section: the smoke suite logs in over SSH");
        Assert.That(ssh.HostKeys.Count > 0 || (ssh.KnownHosts is not null && !ssh.AcceptNewHostKey), Is.True,
            $"{Target.BoardFile}: ssh host key must be pinned (ssh.host_key, or known_hosts without accept_new_host_key)");
        var console = await t.Board.Shell.RunCheckedAsync($"cat {BootIdFile}", Short, t.Token);
        var r = await t.Board.Ssh.RunAsync($"id -u; cat {BootIdFile}", Short, t.Token);
        Assert.That(r.ExitStatus, Is.Zero, r.Stderr);
        var lines = Lines(r.Stdout);
        Assert.That(lines, Has.Count.EqualTo(2), r.Stdout);
        Assert.That(lines[0], Is.EqualTo("0"), "SSH login as root");
        Assert.That(lines[1], Is.EqualTo(console.Output.Trim()), "SSH reaches the board whose console we drive (same boot id)");

        // Pinning is real: the same board under a different pinned key must be refused.
        var wrongPin = "SHA256:" + Convert.ToBase64String(new byte[32]).TrimEnd('=');
        await using var impostorCheck = new SshLink(ssh with { HostKeys = [wrongPin], KnownHosts = null, AcceptNewHostKey = false }, Boards.Log);
        var refused = await Assert.ThrowsAsync<HostKeyRejectedException>(() => impostorCheck.ConnectAsync(Short, t.Token));
        t.Note($"ssh {t.Board.Ssh.Address}: uid 0, same boot id as the console; a wrong pinned key is refused: {refused!.Message}");
    });

    [Test, DependsOnTest(nameof(LoginOverSsh_HostKeyPinned_SameBoardAsTheConsole), AllowFailure = true)]
    public Task TeeDevice_DevTee0IsPresent() => OnBoardAsync(async t =>
    {
        var r = await t.Board.Shell.RunAsync("test -c /dev/tee0 && test -c /dev/teepriv0 && ls -l /dev/tee0 /dev/teepriv0", Short, t.Token);
        Assert.That(r.ExitCode, Is.Zero, $"/dev/tee0 or /dev/teepriv0 missing:\n{r.Output}");
        t.Note(r.Output.Trim());
    });

    [Test, DependsOnTest(nameof(TeeDevice_DevTee0IsPresent), AllowFailure = true)]
    public Task TeeSupplicant_IsRunning() => OnBoardAsync(async t =>
    {
        var r = await t.Board.Shell.RunAsync("pidof tee-supplicant", Short, t.Token);
        Assert.That(r.ExitCode, Is.Zero, "tee-supplicant is not running");
        Assert.That(r.Output.Trim(), Does.Match(@"^\d+( \d+)*$"), r.Output);
        t.Note($"tee-supplicant pid {r.Output.Trim()}");
    });

    [Test, DependsOnTest(nameof(TeeSupplicant_IsRunning), AllowFailure = true)]
    public Task Xtest_Regression1001And4001_Pass() => OnBoardAsync(async t =>
    {
        // xtest -t regression 1001 4001 through Hil.Workloads' runner (over SSH, `timeout` around it) and its parser.
        var options = new XtestOptions { Cases = ["1001", "4001"], Timeout = TimeSpan.FromMinutes(3), Timestamps = false };
        var run = await new XtestRunner(t.Board.Ssh, Boards.Log).RunAsync(options, t.Token);
        t.Attach("xtest.log", $"$ {XtestRunner.CommandLine(options)}\n{run.Output}", "xtest output");
        var report = run.Report;
        var evidence = report.Cases.SelectMany(c => c.FailureLines).Concat(report.Results.Where(r => r.Outcome != XtestOutcome.Passed).Select(r => $"{r.Name}: {r.FirstError}")).ToList();
        if (run.TimedOut) throw new ProductFailureException($"xtest {run.Command} did not finish within {options.Timeout.TotalMinutes:0} min", evidence);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(run.ExitCode, Is.Zero, $"xtest {run.Command} exit status");
            Assert.That(report.Completed, Is.True, "xtest printed its closing line");
            Assert.That(report.Cases.Select(c => (c.Name, c.Outcome)), Is.EquivalentTo(new[] { ("regression_1001", XtestOutcome.Passed), ("regression_4001", XtestOutcome.Passed) }),
                string.Join("\n", evidence));
            Assert.That(report.Summary, Is.Not.Null.And.Property(nameof(XtestSummary.CasesFailed)).Zero.And.Property(nameof(XtestSummary.SubtestsFailed)).Zero);
            Assert.That(run.Passed, Is.True);
        }
        var s = report.Summary!;
        t.Note($"xtest {run.Command}: {s.Cases} cases of which {s.CasesFailed} failed, {s.Subtests} subtests of which {s.SubtestsFailed} failed, in {run.Duration.TotalSeconds:0.0} s");
    });

    /// <summary>
    /// The driver's call-queue policy was told at boot from the loaded optee.ko's code; the board
    /// file's expectation (when given) must agree, and so must what the kernel's headers say: hil_cq
    /// was compiled with tee_client_system_session() exactly when the kernel has system sessions,
    /// which only the mainline driver does.
    /// </summary>
    [Test, DependsOnTest(nameof(Xtest_Regression1001And4001_Pass), AllowFailure = true)]
    public Task DriverPolicy_MeasuredFromTheLoadedDriver_MatchesTheBoardFileAndTheKernelHeaders() => OnBoardAsync(async t =>
    {
        var f = t.Facts;
        t.Note($"kernel policy: {f.Policy.Note}");
        var policy = f.RequirePolicy();
        var module = await SessionModule.GetAsync(t.Live, Boards.Log, t.Token);
        var info = await module.ReadInfoAsync(t.Token);
        t.Note($"hil_cq built against {info.Kernel}'s headers: system sessions {(info.SystemSessionsSupported ? "supported" : "unsupported")}");
        Assert.That(info.SystemSessionsSupported, Is.EqualTo(policy == "mainline"),
            $"the driver's code says {policy}; the kernel's headers {(info.SystemSessionsSupported ? "declare" : "lack")} tee_client_system_session()");
    });

    /// <summary>
    /// The same measurement, on this board, against a copy of its board file whose expectations are
    /// both wrong: the facts must fail as a product failure naming the measured value, the expected
    /// one and where the expectation is written.
    /// </summary>
    [Test, DependsOnTest(nameof(DriverPolicy_MeasuredFromTheLoadedDriver_MatchesTheBoardFileAndTheKernelHeaders), AllowFailure = true)]
    public Task BoardFacts_ABoardFileExpectingOtherwise_FailsNamingBothValues() => OnBoardAsync(async t =>
    {
        var measuredPolicy = t.Facts.RequirePolicy();
        var measuredThreads = t.Facts.RequireThreads();
        var (otherPolicy, otherThreads) = (measuredPolicy == "mainline" ? "legacy" : "mainline", measuredThreads + 1);
        var lines = File.ReadAllLines(Target.BoardFile)
            .Where(l => !l.TrimStart().StartsWith("kernel_policy:", StringComparison.Ordinal) && !l.TrimStart().StartsWith("optee_threads:", StringComparison.Ordinal))
            .ToList();
        var facts = lines.FindIndex(l => l.StartsWith("facts:", StringComparison.Ordinal));
        if (facts < 0)
        {
            lines.Add("facts:");
            facts = lines.Count - 1;
        }
        // The section's own indentation (YAML wants one per mapping).
        var indent = facts + 1 < lines.Count && lines[facts + 1].Length > 0 && char.IsWhiteSpace(lines[facts + 1][0])
            ? lines[facts + 1][..(lines[facts + 1].Length - lines[facts + 1].TrimStart().Length)] : "  ";
        lines.Insert(facts + 1, $"{indent}kernel_policy: {otherPolicy}");
        lines.Insert(facts + 2, $"{indent}optee_threads: \"{otherThreads}\"");
        Directory.CreateDirectory(t.OutputDirectory);
        var wrongFile = Path.Combine(t.OutputDirectory, "board-expecting-otherwise.yaml");
        File.WriteAllLines(wrongFile, lines);
        var wrong = SuiteFacts.FromBoardFile(Hil.Boards.BoardFiles.BoardFileLoader.Load(wrongFile));

        var remeasured = await FactsReader.ReadAsync(t.Live, wrong, Boards.Log, t.Token);
        var policy = Assert.Throws<ProductFailureException>(() => remeasured.RequirePolicy());
        var threads = Assert.Throws<ProductFailureException>(() => remeasured.RequireThreads());
        t.Note($"{policy!.Message} | {threads!.Message}");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(policy.Message, Is.EqualTo($"kernel policy: measured {measuredPolicy} on the board, but {wrongFile}:{facts + 2}: facts.kernel_policy expects {otherPolicy}"));
            Assert.That(threads.Message, Is.EqualTo($"OP-TEE thread count: measured {measuredThreads} on the board, but {wrongFile}:{facts + 3}: facts.optee_threads expects {otherThreads}"));
            Assert.That(remeasured.Policy.MeasuredFrom, Is.EqualTo(t.Facts.Policy.MeasuredFrom), "measured again from the same driver");
        }
    });

    /// <summary>
    /// OP-TEE's thread count as the firmware answered at boot, against the board file's expectation
    /// (when given) and against the count the driver itself got at probe (mainline drivers ask
    /// OP-TEE; the QEMU image's /init records it), which must be there exactly when the driver counts.
    /// </summary>
    [Test, DependsOnTest(nameof(BoardFacts_ABoardFileExpectingOtherwise_FailsNamingBothValues), AllowFailure = true)]
    public Task OpteeThreadCount_MatchesTheBoardFacts() => OnBoardAsync(t =>
    {
        var f = t.Facts;
        t.Note($"OP-TEE thread count: {f.Threads.Note}; the driver's own count: {f.DriverThreadsRecord}");
        // Fails naming both values when the board file or the driver disagrees with the firmware.
        var threads = f.RequireThreads();
        var policy = f.RequirePolicy();
        if (f.DriverThreadsRecord == "absent")
        {
            // A real board whose image does not record the driver's count: nothing to cross-check.
            Assert.That(t.Qemu, Is.Null, $"the QEMU image records the driver's count in {FactsReader.ThreadCountRecord}");
            t.Note("this board does not record the driver's own count: the firmware's answer stands alone");
        }
        else if (policy == "mainline")
            Assert.That(f.DriverThreads, Is.EqualTo(threads), $"the mainline driver asks OP-TEE at probe; its record says '{f.DriverThreadsRecord}'");
        else
            Assert.That(f.DriverThreadsRecord, Is.EqualTo("unavailable"), "a legacy driver does not count threads, so its probe record must be empty");
        return Task.CompletedTask;
    });

    /// <summary>
    /// Fault injection beside the real path: QEMU is killed (SIGKILL) while a command runs on the
    /// board. The pipeline every test uses must classify that as infrastructure at once (not after
    /// a timeout), and the test after it must get a freshly booted board, not the dead one.
    /// </summary>
    [Test, DependsOnTest(nameof(OpteeThreadCount_MatchesTheBoardFacts), AllowFailure = true)]
    public async Task FaultInjection_QemuKilledMidTest_IsInfrastructure_AndTheNextTestGetsAFreshlyBootedBoard()
    {
        var victim = new VictimFacts();
        var killedAt = new Stopwatch();
        var outcome = await RunOnBoardAsync("qemu-killed-mid-test",
            t => KillMidCommandAsync(t, victim, killedAt), new BoardTestOptions { InfrastructureRetries = 0 });
        var ended = killedAt.Elapsed;
        var detection = victim.Live?.LostAtUtc - victim.KilledAtUtc;

        Expect(!outcome.Passed, "the test whose board was killed passed");
        var failure = outcome.Failure!;
        Expect(failure.Class == FailureClass.Infrastructure, $"killing the board mid-test was classified {FailureText.Tag(failure.Class)}: {outcome.Message}");
        Expect(outcome.Message!.StartsWith("[infrastructure] ", StringComparison.Ordinal), $"message without its class: {outcome.Message}");
        Expect(outcome.Attempts.Count == 1, "retries were off, yet it ran again");
        // A QEMU board's power is its process: the loss is seen at once. A lab board's (PDUDaemon) is
        // a request whose answer includes the outlet command: the loss is known when it returns.
        var bound = victim.IsQemu ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(5);
        Expect(detection is { } d && d < bound, $"the loss was noticed {detection?.TotalSeconds:0.00} s after the kill (must be within {bound.TotalSeconds:0} s)");
        Expect(failure.Message.Contains(victim.IsQemu ? "exited with code" : "power switched off", StringComparison.Ordinal), $"the message does not say how the power went: {outcome.Message}");
        Expect(ended < TimeSpan.FromSeconds(10), $"the test ended {ended.TotalSeconds:0.0} s after the kill (should be at once)");
        TestContext.Out.WriteLine($"[{Target.Name}] killed QEMU pid {victim.Pid} (session {victim.Session}) mid-command; noticed {detection?.TotalMilliseconds:0} ms later, the test ended {ended.TotalSeconds:0.00} s later with: {outcome.Message}");

        var next = await RunOnBoardAsync("next-test-after-the-kill", t => FreshBoardAsync(t, victim));
        if (!next.Passed) Assert.Fail(next.Message ?? "[test] the next test failed without a message");
        TestContext.Out.WriteLine($"[{Target.Name}] the next test ran on session {Boards.Current?.Session} ({Boards.Current?.BootReason})");
    }

    /// <summary>
    /// Only infrastructure failures are retried, once, on a fresh board: a killed board is retried and
    /// the retry passes; a product failure and a failed assertion run once and keep the session.
    /// </summary>
    [Test, DependsOnTest(nameof(FaultInjection_QemuKilledMidTest_IsInfrastructure_AndTheNextTestGetsAFreshlyBootedBoard), AllowFailure = true)]
    public async Task FaultInjection_OnlyInfrastructureFailuresAreRetried_OnceOnAFreshBoard()
    {
        var victim = new VictimFacts();
        var retried = await RunOnBoardAsync("killed-then-retried", async t =>
        {
            if (t.Attempt == 1) await KillMidCommandAsync(t, victim, new Stopwatch());
            else await FreshBoardAsync(t, victim);
        });
        Expect(retried.Passed, $"the retry on a fresh board failed: {retried.Message}");
        Expect(retried.Attempts.Count == 2, $"expected exactly one retry, got {retried.Attempts.Count} attempts");
        Expect(retried.Attempts[0].Failure?.Class == FailureClass.Infrastructure, "the first attempt was not an infrastructure failure");
        Expect(retried.Attempts[1].Session > retried.Attempts[0].Session, "the retry ran on the same session");
        Expect(retried.PassedOnRetry && retried.RetryNote is { } note && note.StartsWith(RetryConvention.PassedOnRetryMarker, StringComparison.Ordinal)
               && note.Contains($"attempt 1 (session {retried.Attempts[0].Session}) failed: [infrastructure]", StringComparison.Ordinal),
            $"a pass on retry must say so with the first attempt's failure: {retried.RetryNote ?? "(no note)"}");

        var session = Boards.Current?.Session;
        var product = await RunOnBoardAsync("product-failure",
            _ => throw new ProductFailureException("injected product failure"));
        Expect(product.Failure?.Class == FailureClass.Product && product.Attempts.Count == 1, $"a product failure was retried or misclassified: {product.Message}");
        Expect(product.Message!.StartsWith("[product] ", StringComparison.Ordinal), $"message without its class: {product.Message}");

        var assertion = await RunOnBoardAsync("failed-assertion", async t =>
        {
            var r = await t.Board.Shell.RunAsync("echo 1", Short, t.Token);
            Assert.That(r.Output.Trim(), Is.EqualTo("2"), "injected assertion failure");
        });
        Expect(assertion.Failure?.Class == FailureClass.Product && assertion.Attempts.Count == 1, $"a failed assertion was retried or misclassified: {assertion.Message}");
        Expect(Boards.Current?.Session == session, "a product failure cost a fresh boot; only infrastructure failures may");
        TestContext.Out.WriteLine($"[{Target.Name}] retried once after: [infrastructure] {retried.Attempts[0].Failure!.Message}; not retried: {product.Message}; {assertion.Message!.Split('\n')[0]}");
    }

    [Test, DependsOnTest(nameof(FaultInjection_OnlyInfrastructureFailuresAreRetried_OnceOnAFreshBoard), AllowFailure = true)]
    public Task Consoles_ShowNoPanicOopsOrOpteeAbort_DuringTheSuite() => OnBoardAsync(t =>
    {
        var events = Boards.ConsoleEvents;
        var sessions = Boards.Sessions;
        t.Note($"{sessions.Count} session(s) this suite; console events: {events.Count}");
        if (events.Count > 0)
            throw new ProductFailureException($"the consoles showed {events.Count} event(s) during the suite; first: {events[0]}",
                events.SelectMany(e => e.Context.Append($"=> {e}")).ToList());
        return Task.CompletedTask;
    });

    // ---- product faults: they run after the console check above, which covers every other test ----

    /// <summary>
    /// A kernel panic while the test waits on an SSH command: the panic, not the SSH channel that
    /// hangs or drops with it, decides the class — product, with the panic lines as evidence, never
    /// retried (retries stay on), and noticed at once rather than after a command timeout. The board
    /// is not used again: the next test gets a fresh one.
    /// </summary>
    [Test, DependsOnTest(nameof(Consoles_ShowNoPanicOopsOrOpteeAbort_DuringTheSuite), AllowFailure = true)]
    public async Task FaultInjection_KernelPanicDuringAnSshWorkload_IsProduct_NotRetried_AndTheNextTestGetsAFreshBoard()
    {
        var victim = new VictimFacts();
        var crashedAt = new Stopwatch();
        var outcome = await RunOnBoardAsync("sysrq-crash-during-ssh-workload", async t =>
        {
            victim.Live = t.Live;
            victim.Session = t.Live.Session;
            victim.BootId = (await t.Board.Ssh.RunCheckedAsync($"cat {BootIdFile}", Short, t.Token)).Stdout.Trim();
            // The workload: a long SSH command the test waits on when the kernel dies under it.
            var workload = Task.Run(() => t.Board.Ssh.RunAsync("sleep 120; echo survived", TimeSpan.FromSeconds(150), t.Token), t.Token);
            await Task.Delay(TimeSpan.FromSeconds(1), t.Token);
            crashedAt.Start();
            _ = t.Board.Ssh.RunAsync("echo c > /proc/sysrq-trigger", TimeSpan.FromSeconds(150), t.Token);
            await workload;
            throw new TestErrorException("the SSH workload completed although the kernel was made to panic");
        }, new BoardTestOptions { InfrastructureRetries = 1, Budget = TimeSpan.FromMinutes(3) });
        var ended = crashedAt.Elapsed;

        Expect(!outcome.Passed, "a test during which the kernel panicked passed");
        var failure = outcome.Failure!;
        Expect(failure.Class == FailureClass.Product, $"a kernel panic mid-test was classified {FailureText.Tag(failure.Class)}: {outcome.Message}");
        Expect(outcome.Attempts.Count == 1, $"a product failure was retried ({outcome.Attempts.Count} attempts): {outcome.Message}");
        Expect(failure.Message.Contains("KernelPanic", StringComparison.Ordinal), $"the message does not name the panic: {failure.Message}");
        Expect(failure.Evidence.Any(l => l.Contains("Kernel panic - not syncing", StringComparison.Ordinal)), "the panic line is not in the evidence");
        Expect(failure.Evidence.Any(l => l.Contains("sysrq", StringComparison.OrdinalIgnoreCase)), "the evidence does not show what crashed it (sysrq)");
        Expect(ended < TimeSpan.FromSeconds(30), $"the test ended {ended.TotalSeconds:0.0} s after the crash (should be as soon as the console shows the panic)");
        TestContext.Out.WriteLine($"[{Target.Name}] sysrq crash over SSH on session {victim.Session}: ended {ended.TotalSeconds:0.00} s later with: {outcome.Message!.Split('\n')[0]}");

        var next = await RunOnBoardAsync("next-test-after-the-panic", t => FreshBoardAsync(t, victim));
        if (!next.Passed) Assert.Fail(next.Message ?? "[test] the next test failed without a message");
    }

    /// <summary>An Oops in a task, made by our module: product, evidence the Oops, not retried; the tainted board is replaced.</summary>
    [Test, DependsOnTest(nameof(FaultInjection_KernelPanicDuringAnSshWorkload_IsProduct_NotRetried_AndTheNextTestGetsAFreshBoard), AllowFailure = true)]
    public async Task FaultInjection_OopsThroughOurModule_IsProduct_NotRetried()
    {
        int? session = null;
        var outcome = await RunOnBoardAsync("module-oops", async t =>
        {
            session = t.Live.Session;
            await FaultModule.ArmAsync(t, Boards.Log);
            // The task that writes dies in the Oops: its SSH channel ends without an exit status.
            await t.Board.Ssh.RunAsync(FaultModule.Inject("oops"), Short, t.Token);
            await t.Board.Ssh.RunCheckedAsync("true", Short, t.Token);
        }, new BoardTestOptions { InfrastructureRetries = 1, Budget = TimeSpan.FromMinutes(3) });
        ExpectProductConsoleFailure(outcome, "Oops", "Internal error: Oops");
        Expect(Boards.Current is null || Boards.Current.Session != session || Boards.Current.Unhealthy() is not null,
            "the session whose kernel Oopsed would run the next test (it must be replaced)");
        TestContext.Out.WriteLine($"[{Target.Name}] module Oops: {outcome.Message!.Split('\n')[0]}");
    }

    /// <summary>A kernel WARNING made by our module while the test itself succeeds: the test fails as product, not retried.</summary>
    [Test, DependsOnTest(nameof(FaultInjection_OopsThroughOurModule_IsProduct_NotRetried), AllowFailure = true)]
    public async Task FaultInjection_WarningThroughOurModule_FailsAPassingTest_AsProduct()
    {
        var outcome = await RunOnBoardAsync("module-warning", async t =>
        {
            await FaultModule.ArmAsync(t, Boards.Log);
            var r = await t.Board.Ssh.RunAsync(FaultModule.Inject("warn"), Short, t.Token);
            Assert.That(r.ExitStatus, Is.Zero, "a WARNING does not kill the writer: " + r.Stderr);
        }, new BoardTestOptions { InfrastructureRetries = 1, Budget = TimeSpan.FromMinutes(3) });
        ExpectProductConsoleFailure(outcome, "KernelWarning", "WARNING: CPU:");
        TestContext.Out.WriteLine($"[{Target.Name}] module WARNING: {outcome.Message!.Split('\n')[0]}");
    }

    private static void ExpectProductConsoleFailure(BoardTestOutcome outcome, string kind, string line)
    {
        Expect(!outcome.Passed, $"a test during which the kernel showed {kind} passed");
        var failure = outcome.Failure!;
        Expect(failure.Class == FailureClass.Product, $"{kind} mid-test was classified {FailureText.Tag(failure.Class)}: {outcome.Message}");
        Expect(outcome.Attempts.Count == 1, $"a product failure was retried ({outcome.Attempts.Count} attempts): {outcome.Message}");
        Expect(failure.Message.Contains(kind, StringComparison.Ordinal), $"the message does not name {kind}: {failure.Message}");
        Expect(failure.Evidence.Any(l => l.Contains(line, StringComparison.Ordinal)), $"'{line}' is not in the evidence: {string.Join(" | ", failure.Evidence)}");
        Expect(failure.Evidence.Any(l => l.Contains("hil_cq", StringComparison.Ordinal)), "the evidence does not show our module's injection");
    }

    /// <summary>What the killed session was, so the next test can prove it runs on another one.</summary>
    private sealed class VictimFacts
    {
        public LiveBoard? Live;
        public DateTimeOffset KilledAtUtc;
        public int Session;
        public int Pid;
        public string BootId = "";
        public bool IsQemu => Live?.Qemu is not null;
    }

    private static async Task KillMidCommandAsync(BoardTestContext t, VictimFacts victim, Stopwatch killedAt)
    {
        if (t.Qemu is null && !t.Board.Power.CanSwitch)
            throw new TestErrorException($"board {t.Live.Target.Name}: fault injection needs a QEMU board or switchable power ({t.Live.Target.BoardFile})");
        victim.Live = t.Live;
        victim.Session = t.Live.Session;
        victim.Pid = t.Qemu?.Power.Instance?.ProcessId ?? 0;
        victim.BootId = (await t.Board.Shell.RunCheckedAsync($"cat {BootIdFile}", Short, t.Token)).Output.Trim();
        // Started on the thread pool: on a pollable console (QEMU's socket) ConsoleShell.RunAsync may
        // wait for the answer on the calling thread before it returns its task.
        var running = Task.Run(() => t.Board.Shell.RunAsync("sleep 120", TimeSpan.FromSeconds(150), t.Token), t.Token);
        await Task.Delay(TimeSpan.FromSeconds(1), t.Token);
        if (running.IsCompleted)
            throw new TestErrorException("sleep 120 ended within a second, before the kill: " + (running.IsCompletedSuccessfully
                ? $"exit {running.Result.ExitCode}, output '{running.Result.Output}'" : running.Exception?.GetBaseException().ToString()));
        killedAt.Start();
        victim.KilledAtUtc = DateTimeOffset.UtcNow;
        await t.Live.CutPowerAsync();
        await running;
        throw new TestErrorException("sleep 120 completed although the board was killed");
    }

    private static async Task FreshBoardAsync(BoardTestContext t, VictimFacts victim)
    {
        var r = await t.Board.Shell.RunCheckedAsync($"cat {BootIdFile}; cut -d. -f1 /proc/uptime", Short, t.Token);
        var lines = Lines(r.Output);
        var pid = t.Qemu?.Power.Instance?.ProcessId ?? 0;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(t.Live.Session, Is.GreaterThan(victim.Session), "a new session");
            Assert.That(lines[0], Is.Not.EqualTo(victim.BootId), "a new boot (boot id)");
            Assert.That(int.Parse(lines[1]), Is.LessThan(300), "freshly booted (uptime in seconds)");
            if (t.Qemu is not null) Assert.That(pid, Is.Not.EqualTo(victim.Pid), "a new QEMU process");
        }
        var ssh = await t.Board.Ssh.RunAsync($"cat {BootIdFile}", Short, t.Token);
        Assert.That(ssh.Stdout.Trim(), Is.EqualTo(lines[0]), "SSH reaches the fresh board");
        t.Note($"fresh board: session {t.Live.Session} ({t.Live.BootReason}), QEMU pid {pid}, uptime {lines[1]} s, booted in {t.Live.BootDuration.TotalSeconds:0.0} s");
    }

    /// <summary>A harness expectation of the fault-injection tests: when it fails the harness is wrong, a test error.</summary>
    private static void Expect(bool condition, string message)
    {
        if (!condition) Assert.Fail($"[test] {message}");
    }

    private static List<string> Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).ToList();
}
