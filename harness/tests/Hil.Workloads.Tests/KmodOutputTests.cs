using Hil.Workloads.Kmod;

namespace Hil.Workloads.Tests;

/// <summary>Parsing the module's debugfs files, on lines the module printed on the QEMU boards.</summary>
public class KmodOutputTests
{
    // 6.12: a normal and a system session, one 300 ms call each at t0 (the normal one waits: a
    // registered system session keeps the last free thread).
    private const string Results612 =
        "id=0 op=open session=a kind=normal start_ms=- hold_ms=- state=done tid=187 due_ns=- req_ns=50016760352 ret_ns=50550840304 rc=0 ret=0x00000000 origin=4\n" +
        "id=1 op=open session=s kind=normal start_ms=- hold_ms=- state=done tid=187 due_ns=- req_ns=50554162896 ret_ns=50905359760 rc=0 ret=0x00000000 origin=4\n" +
        "id=2 op=invoke session=a kind=normal start_ms=0 hold_ms=300 state=done tid=189 due_ns=50931939232 req_ns=50942171904 ret_ns=51583019360 rc=0 ret=0x00000000 origin=4\n" +
        "id=3 op=invoke session=s kind=system start_ms=0 hold_ms=300 state=done tid=190 due_ns=50931939232 req_ns=50935147632 ret_ns=51262813200 rc=0 ret=0x00000000 origin=4\n";

    [Test]
    public void ResultsLinesBecomeRecords()
    {
        var r = KmodOutput.Records(Results612);
        Assert.That(r, Has.Count.EqualTo(4));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(r[0], Is.EqualTo(new KmodRecord(0, KmodOp.Open, "a", SessionKind.Normal, null, null, KmodCallState.Done, 187, null,
                50016760352, 50550840304, 0, 0, 4)));
            Assert.That(r[3].Op, Is.EqualTo(KmodOp.Invoke));
            Assert.That(r[3].Kind, Is.EqualTo(SessionKind.System));
            Assert.That(r[3].HoldMs, Is.EqualTo(300u));
            Assert.That(r[3].Succeeded, Is.True);
            Assert.That(r[3].Duration!.Value.TotalMilliseconds, Is.EqualTo(327.67).Within(0.01));
            Assert.That(r[2].RequestOffsetMs(50931939232), Is.EqualTo(10.23).Within(0.01));
            Assert.That(r[2].ReturnOffsetMs(50931939232), Is.EqualTo(651.08).Within(0.01));
        }
    }

    [Test]
    public void UnfinishedAndFailedCallsKeepTheirDashesAndCodes()
    {
        var waiting = KmodOutput.ParseRecord("id=4 op=invoke session=a kind=normal start_ms=4000 hold_ms=100 state=waiting tid=211 due_ns=61263293456 req_ns=- ret_ns=- rc=- ret=- origin=-");
        var failed = KmodOutput.ParseRecord("id=5 op=open session=z kind=normal start_ms=- hold_ms=- state=done tid=300 due_ns=- req_ns=1 ret_ns=2 rc=0 ret=0xffff0008 origin=3");
        var queued = KmodOutput.ParseRecord("id=6 op=invoke session=a kind=normal start_ms=0 hold_ms=1 state=queued tid=- due_ns=- req_ns=- ret_ns=- rc=- ret=- origin=-");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(waiting.State, Is.EqualTo(KmodCallState.Waiting));
            Assert.That(waiting.RequestNs, Is.Null);
            Assert.That(waiting.Duration, Is.Null);
            Assert.That(waiting.Succeeded, Is.False);
            Assert.That(failed.TeeResult, Is.EqualTo(0xffff0008u));
            Assert.That(failed.Succeeded, Is.False);
            Assert.That(queued.Tid, Is.Null);
        }
    }

    [TestCase("id=0 op=frobnicate session=a kind=normal start_ms=- hold_ms=- state=done tid=1 due_ns=- req_ns=1 ret_ns=2 rc=0 ret=0x0 origin=4", "op")]
    [TestCase("id=0 op=open session=a kind=normal start_ms=- hold_ms=- state=done tid=1 due_ns=- req_ns=1 ret_ns=2 rc=0 ret=12 origin=4", "ret")]
    [TestCase("id=0 op=open session=a kind=normal start_ms=- hold_ms=- state=done tid=1 due_ns=- req_ns=x ret_ns=2 rc=0 ret=0x0 origin=4", "req_ns")]
    [TestCase("id=0 op=open session=a kind=normal", "state")]
    [TestCase("id=0 op=open session=a kind=1 start_ms=- hold_ms=- state=done", "kind")]
    [TestCase("garbage", "garbage")]
    public void MalformedLinesNameTheProblem(string line, string mentioned)
    {
        var ex = Assert.Throws<FormatException>(() => KmodOutput.ParseRecord(line));
        Assert.That(ex!.Message, Does.Contain(mentioned));
    }

    [Test]
    public void SessionsShowWhatTheSystemRequestGave()
    {
        var s = KmodOutput.Sessions(
            "name=a tee_session=1 kind=normal system=no sys_rc=0 pending=1\n" +
            "name=s tee_session=2 kind=system system=registered sys_rc=0 pending=1\n" +
            "name=b tee_session=2 kind=normal system=unsupported sys_rc=-95 pending=0\n");
        Assert.That(s.Select(x => (x.Name, x.Kind, x.System, x.SystemRc)), Is.EqualTo(new[]
        {
            ("a", SessionKind.Normal, SystemRegistration.NotRequested, 0),
            ("s", SessionKind.System, SystemRegistration.Registered, 0),
            ("b", SessionKind.Normal, SystemRegistration.Unsupported, -95),
        }));
    }

    [Test]
    public void InfoReportsKernelSupportAndRunState()
    {
        var info = KmodOutput.Info("""
            module: hil_cq
            version: 1
            kernel: 6.12.118+deb13-arm64
            system_sessions: supported
            context: none
            sessions: 0
            records: 0
            max_records: 256
            state: running
            queued: 0
            waiting: 1
            calling: 2
            done: 4
            cancelled: 0
            t0_ns: 50931939232
            runs: 2
            now_ns: 46892628592
            max_start_ms: 600000
            max_hold_ms: 60000
            """);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(info.Kernel, Is.EqualTo("6.12.118+deb13-arm64"));
            Assert.That(info.SystemSessionsSupported, Is.True);
            Assert.That(info.Running, Is.True);
            Assert.That((info.Waiting, info.Calling, info.Done), Is.EqualTo((1, 2, 4)));
            Assert.That(info.T0Ns, Is.EqualTo(50931939232UL));
            Assert.That(info.Fields["max_hold_ms"], Is.EqualTo("60000"));
        }
        Assert.Throws<FormatException>(() => KmodOutput.Info("kernel: x\n"));
    }

    [Test]
    public void FirmwareFileGivesTheCountOrTheReasonThereIsNone()
    {
        var counted = KmodOutput.Firmware("thread_count: 2\nconduit: smc\n");
        var none = KmodOutput.Firmware("thread_count: unavailable\nreason: OPTEE_SMC_GET_THREAD_COUNT returned 0xffffffff\nconduit: smc\n");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(counted, Is.EqualTo(new KmodFirmware(2, "smc", null)));
            Assert.That(none.ThreadCount, Is.Null);
            Assert.That(none.Reason, Is.EqualTo("OPTEE_SMC_GET_THREAD_COUNT returned 0xffffffff"));
            Assert.That(none.ToString(), Does.Contain("0xffffffff"));
        }
    }

    [TestCase("conduit: smc\n", "no 'thread_count:'")]
    [TestCase("thread_count: unavailable\n", "no 'reason:'")]
    [TestCase("thread_count: 0\nconduit: smc\n", "thread_count '0'")]
    [TestCase("thread_count: -3\nconduit: smc\n", "thread_count '-3'")]
    [TestCase("thread_count: two\nconduit: smc\n", "thread_count 'two'")]
    [TestCase("thread_count: 2\n", "conduit '(missing)'")]
    [TestCase("thread_count 2\n", "without 'key:'")]
    public void AMalformedFirmwareFileIsRefusedNamingWhatIsWrong(string text, string expected)
    {
        var ex = Assert.Throws<FormatException>(() => KmodOutput.Firmware(text));
        Assert.That(ex!.Message, Does.Contain(expected));
    }
}
