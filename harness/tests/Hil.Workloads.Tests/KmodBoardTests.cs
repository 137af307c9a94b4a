using Hil.Workloads.Kmod;

namespace Hil.Workloads.Tests.OnBoard;

/// <summary>
/// hil_cq on both QEMU kernels: 6.12 (system sessions, mainline call queue) and 6.1 (before
/// system sessions). Real module, real OP-TEE, real os_test TA.
/// </summary>
[TestFixture("qemu-optee")]
[TestFixture("qemu-optee-6.1")]
[NonParallelizable]
public class KmodBoardTests(string board)
{
    private WorkloadBoard _board = null!;
    private KmodDriver _kmod = null!;

    [OneTimeSetUp]
    public async Task BootAsync() => _board = await KmodBoards.GetAsync(board);

    [SetUp]
    public async Task CleanModuleAsync()
    {
        _kmod = await _board.ModuleAsync();
        await _kmod.WaitIdleAsync(TimeSpan.FromSeconds(90));
        await _kmod.ResetAsync();
    }

    private void Say(string text) => TestContext.Progress.WriteLine($"{board}: {text}");

    [Test]
    public async Task LoadsAndReportsItsKernelAndSystemSessionSupport()
    {
        var info = await _kmod.ReadInfoAsync();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(info.Kernel, Is.EqualTo(_board.Image.KernelRelease));
            Assert.That(info.SystemSessionsSupported, Is.EqualTo(_board.HasSystemSessions), "detected from the kernel's headers at build time");
            Assert.That(_kmod.Module.SystemSessionsCompiled, Is.EqualTo(_board.HasSystemSessions));
            Assert.That(_kmod.Module.VerMagic, Does.StartWith(_board.Image.KernelRelease + " "));
            Assert.That(info.Running, Is.False);
            Assert.That(info.Sessions, Is.Zero);
        }
        Say($"{_kmod.Module.Path} ({new FileInfo(_kmod.Module.Path).Length / 1024} KiB, vermagic '{_kmod.Module.VerMagic}', system sessions {(info.SystemSessionsSupported ? "supported" : "unsupported")})");
    }

    [Test]
    public async Task TwoKernelCallsOf300MsRunInParallelOnTheTwoSecureThreads()
    {
        await _kmod.OpenAsync("a", SessionKind.Normal);
        await _kmod.OpenAsync("b", SessionKind.Normal);
        var run = await _kmod.RunAsync([new KmodCall("a", 0, 300), new KmodCall("b", 0, 300)]);
        foreach (var c in run.Calls)
            Say($"call {c.Session}: request +{c.RequestOffsetMs(run.T0Ns):0.0} ms, return +{c.ReturnOffsetMs(run.T0Ns):0.0} ms " +
                $"({c.Duration!.Value.TotalMilliseconds:0.0} ms, kthread {c.Tid}, rc {c.Rc}, TEE 0x{c.TeeResult:x8}, origin {c.Origin})");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(run.AllSucceeded, Is.True, string.Join("\n", run.Calls));
            Assert.That(run.Calls.Select(c => c.Kind), Is.All.EqualTo(SessionKind.Normal));
            Assert.That(run.Calls.Select(c => c.Tid).Distinct().Count(), Is.EqualTo(2), "one kernel thread per call");
            foreach (var c in run.Calls)
            {
                // Started on time (absolute hrtimer on CLOCK_MONOTONIC) and held the thread for the time asked.
                Assert.That(c.RequestOffsetMs(run.T0Ns), Is.InRange(0.0, 100.0));
                Assert.That(c.Duration!.Value.TotalMilliseconds, Is.InRange(295.0, 1200.0));
            }
            // In parallel: each entered before the other returned, and together they took far less than 2 x 300 ms.
            Assert.That(run.Calls.Max(c => c.RequestNs!.Value), Is.LessThan(run.Calls.Min(c => c.ReturnNs!.Value)));
            Assert.That((run.Calls.Max(c => c.ReturnNs!.Value) - run.Calls.Min(c => c.RequestNs!.Value)) / 1e6, Is.LessThan(550.0));
        }
    }

    [Test]
    public async Task SystemSessionRegistersFrom68AndIsReportedUnsupportedBefore()
    {
        var s = await _kmod.OpenAsync("s", SessionKind.System);
        Say($"open s system -> {s.System} (rc {s.SystemRc}), calls are {s.Kind}");
        var run = await _kmod.RunAsync([new KmodCall("s", 0, 300)]);
        await _kmod.SendAsync(KmodCommand.Close("s"));
        var records = await _kmod.ReadResultsAsync();
        var close = records.Last();
        var call = run.Calls.Single();
        Say($"call on s: {call.Kind}, {call.Duration!.Value.TotalMilliseconds:0.0} ms; close: {close.Kind}, {close.Duration!.Value.TotalMilliseconds:0.0} ms");
        using (Assert.EnterMultipleScope())
        {
            if (_board.HasSystemSessions)
            {
                Assert.That(s.System, Is.EqualTo(SystemRegistration.Registered));
                Assert.That(s.Kind, Is.EqualTo(SessionKind.System));
                Assert.That(call.Kind, Is.EqualTo(SessionKind.System));
            }
            else
            {
                // A result, not an error: the session stays normal.
                Assert.That(s.System, Is.EqualTo(SystemRegistration.Unsupported));
                Assert.That(s.SystemRc, Is.EqualTo(-95), "EOPNOTSUPP");
                Assert.That(s.Kind, Is.EqualTo(SessionKind.Normal));
                Assert.That(call.Kind, Is.EqualTo(SessionKind.Normal));
            }
            Assert.That(call.Succeeded, Is.True, call.ToString());
            // The session's open is never a system call; its close is one when the session is a system session.
            Assert.That(records.Single(r => r.Op == KmodOp.Open && r.Session == "s").Kind, Is.EqualTo(SessionKind.Normal));
            Assert.That(close.Op, Is.EqualTo(KmodOp.Close));
            Assert.That(close.Kind, Is.EqualTo(s.Kind));
            Assert.That(close.Rc, Is.Zero);
        }
    }

    /// <summary>
    /// The firmware file asks OP-TEE itself (OPTEE_SMC_GET_THREAD_COUNT) on both kernels. Checked
    /// against two sources it does not read: the board file's expectation (a person's reading of
    /// OP-TEE's configuration) and, where the driver counts (6.8+), the count the driver got at
    /// probe, which /init's kprobe on optee_cq_init recorded before this module was even loaded.
    /// </summary>
    [Test]
    public async Task FirmwareFileReportsOpteesThreadCountOnBothKernels()
    {
        var firmware = await _kmod.ReadFirmwareAsync();
        var record = (await _board.Ssh.RunCheckedAsync("cat /run/hil/optee_thread_count", TimeSpan.FromSeconds(20))).Stdout.Trim();
        var expected = Hil.Boards.BoardFiles.BoardFileLoader.Load(Path.Combine(KmodTestSupport.RepoRoot, "boards", board + ".yaml")).OpteeThreads;
        Say($"firmware: {firmware}; driver's own count (kprobe record): {record}; board file expects {expected?.ToString() ?? "nothing"}");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(firmware.ThreadCount, Is.Not.Null, firmware.ToString());
            Assert.That(firmware.Conduit, Is.EqualTo("smc"), "the QEMU board's device tree names the smc conduit");
            Assert.That(expected, Is.Not.Null, "the QEMU board files state optee_threads");
            Assert.That(firmware.ThreadCount, Is.EqualTo(expected), "OP-TEE's answer against the board file's expectation");
            if (_board.HasSystemSessions)
                Assert.That(record, Is.EqualTo(firmware.ThreadCount.ToString()), "the 6.12 driver asked OP-TEE the same question at probe");
            else
                Assert.That(record, Is.EqualTo("unavailable"), "the 6.1 driver never asks OP-TEE for its thread count");
        }
    }

    private static readonly (string Line, string Errno, string Reason)[] BadLines =
    [
        ("bogus", "EINVAL", "unknown command 'bogus'"),
        ("", "EINVAL", "empty command"),
        ("call a 1", "EINVAL", "usage: call NAME START_MS HOLD_MS"),
        ("call nosuch 0 1", "ENOENT", "call: no open session 'nosuch' (open it first)"),
        ("call a abc 1", "EINVAL", "call: start_ms 'abc' is not a whole number of milliseconds"),
        ("call a -5 1", "EINVAL", "call: start_ms '-5' is not a whole number of milliseconds"),
        ("call a 0 60001", "EINVAL", "call: hold_ms 60001 is above the limit 60000"),
        ("call a 600001 1", "EINVAL", "call: start_ms 600001 is above the limit 600000"),
        ("open a normal", "EEXIST", "open: session 'a' is already open"),
        ("open b sideways", "EINVAL", "open: kind 'sideways' must be 'normal' or 'system'"),
        ("open bad/name normal", "EINVAL", "must be 1-15 characters"),
        ("open sixteen-chars-xx normal", "EINVAL", "must be 1-15 characters"),
        ("close nosuch", "ENOENT", "close: no open session 'nosuch'"),
        ("go", "EINVAL", "go: no calls queued"),
        ("go 99999", "EINVAL", "go: lead_ms 99999 is above the limit 10000"),
        ("reset now", "EINVAL", "usage: reset"),
        ("call a 0 1 2 3 4 5", "EINVAL", "too many words"),
    ];

    [Test]
    public async Task BadCommandsAreRejectedWithTheModulesReason()
    {
        await _kmod.OpenAsync("a", SessionKind.Normal);
        var replies = await _kmod.TrySendRawAsync(BadLines.Select(b => b.Line).ToList());
        Assert.That(replies, Has.Count.EqualTo(BadLines.Length));
        foreach (var ((line, errno, reason), reply) in BadLines.Zip(replies))
        {
            Assert.That(reply.Command, Is.EqualTo(line));
            Assert.That(reply.Accepted, Is.False, $"'{line}' was accepted");
            Assert.That(reply.Errno, Is.EqualTo(errno), reply.ToString());
            Assert.That(reply.Reason, Does.Contain(reason), reply.ToString());
        }
        // Through the typed API the rejection is an exception that names the command, the reason and the code.
        var ex = await Assert.ThrowsAsync<KmodCommandRejectedException>(() => _kmod.SendAsync(KmodCommand.Call("nosuch", 0, 1)));
        Assert.That(ex!.Message, Is.EqualTo("hil_cq rejected 'call nosuch 0 1': call: no open session 'nosuch' (open it first) [ENOENT]"));
        Assert.That(ex.Class, Is.EqualTo(Hil.Boards.Failures.FailureClass.Test));

        // While a run is in flight, changes that would pull the ground from under it are refused.
        await _kmod.StartAsync([new KmodCall("a", 0, 1500)]);
        var busyReset = await _kmod.TrySendRawAsync("reset");
        var busyClose = await _kmod.TrySendRawAsync("close a");
        var busyGo = await _kmod.TrySendRawAsync("go");
        await _kmod.WaitIdleAsync(TimeSpan.FromSeconds(60));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(busyReset.Errno, Is.EqualTo("EBUSY"), busyReset.ToString());
            Assert.That(busyReset.Reason, Does.Contain("have not finished"));
            Assert.That(busyClose.Errno, Is.EqualTo("EBUSY"), busyClose.ToString());
            Assert.That(busyGo.Errno, Is.EqualTo("EBUSY"), busyGo.ToString());
            // A good command after all that is accepted, and the error file is cleared by it.
            Assert.That((await _kmod.TrySendRawAsync("close a")).Accepted, Is.True);
            Assert.That(await _kmod.ReadErrorAsync(), Is.Empty);
        }
        Say($"{BadLines.Length} malformed commands and 3 busy ones rejected, e.g. {busyReset}");
    }

    [Test]
    public async Task CancelDropsCallsNotStartedAndLetsRunningOnesFinish()
    {
        await _kmod.OpenAsync("a", SessionKind.Normal);
        await _kmod.OpenAsync("b", SessionKind.Normal);
        var t0 = await _kmod.StartAsync([new KmodCall("a", 0, 800), new KmodCall("b", 5000, 100)]);
        var mid = await _kmod.ReadResultsAsync();
        await _kmod.SendAsync(KmodCommand.Cancel);
        var idle = await _kmod.WaitIdleAsync(TimeSpan.FromSeconds(60));
        var records = (await _kmod.ReadResultsAsync()).Where(r => r.Op == KmodOp.Invoke).ToList();
        Say($"after cancel: {string.Join("; ", records)} (idle {(idle.NowNs - t0) / 1e6:0} ms after t0)");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(mid.Where(r => r.Op == KmodOp.Invoke).Select(r => r.State), Has.Some.EqualTo(KmodCallState.Waiting), "read while the run was in flight");
            Assert.That(records.Single(r => r.Session == "a").Succeeded, Is.True, "a running call ends with its hold");
            var b = records.Single(r => r.Session == "b");
            Assert.That(b.State, Is.EqualTo(KmodCallState.Cancelled));
            Assert.That(b.RequestNs, Is.Null, "never entered the driver");
            Assert.That((idle.NowNs - t0) / 1e6, Is.LessThan(4000.0), "did not wait for the dropped call's start time");
        }
    }

    [Test]
    public async Task UnloadingWithCallsInFlightIsClean()
    {
        await _kmod.OpenAsync("a", SessionKind.Normal);
        await _kmod.OpenAsync("b", _board.HasSystemSessions ? SessionKind.System : SessionKind.Normal);
        var marker = $"hil-unload-test-{Guid.NewGuid():N}";
        await _board.Ssh.RunCheckedAsync($"echo {marker} > /dev/kmsg", TimeSpan.FromSeconds(30));
        // Two calls hold both secure threads for 2 s; a third is still waiting for its start time.
        await _kmod.StartAsync([new KmodCall("a", 0, 2000), new KmodCall("b", 0, 2000), new KmodCall("a", 8000, 100)], leadMs: 10);
        var info = await _kmod.ReadInfoAsync();
        for (var i = 0; i < 100 && info.Calling < 2; i++)
        {
            await Task.Delay(50);
            info = await _kmod.ReadInfoAsync();
        }
        Assert.That((info.Calling, info.Waiting), Is.EqualTo((2, 1)), "two calls inside OP-TEE, one not started");

        var unload = await _kmod.UnloadAsync(TimeSpan.FromSeconds(120));
        var log = (await _board.Ssh.RunCheckedAsync("dmesg", TimeSpan.FromSeconds(30))).Stdout;
        var since = log[(log.LastIndexOf(marker, StringComparison.Ordinal) + marker.Length)..];
        Say($"rmmod with {unload.InFlight} calls in flight took {unload.Duration.TotalSeconds:0.00} s on the board");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(unload.InFlight, Is.EqualTo(3));
            // It waits for the running calls (kernel clients cannot cancel) and drops the waiting one at once.
            Assert.That(unload.Duration.TotalSeconds, Is.InRange(0.0, 10.0));
            Assert.That(since, Does.Contain("hil_cq: unloading with 3 calls in flight"));
            Assert.That(since, Does.Contain("hil_cq: unloaded"));
            Assert.That(since, Does.Not.Contain("BUG").And.Not.Contain("Oops").And.Not.Contain("WARNING").And.Not.Contain("Call trace"));
            Assert.That((await _board.Ssh.RunAsync("test -e /sys/module/hil_cq", TimeSpan.FromSeconds(30))).ExitStatus, Is.Not.Zero);
        }
        // The TEE side is intact: loading again, the same session names open and a call runs.
        await _kmod.InsertAsync();
        await _kmod.OpenAsync("a", SessionKind.Normal);
        var again = await _kmod.RunAsync([new KmodCall("a", 0, 50)]);
        Assert.That(again.AllSucceeded, Is.True, string.Join("\n", again.Calls));
    }
}
