using System.Text.Json;
using Hil.Model.Conformance;
using Hil.Workloads.Tracing;
using Hil.Workloads.Tracing.Conversion;
using Hil.Workloads.Tracing.Ftrace;
using Hil.Workloads.Tracing.Planning;
using Hil.Workloads.Tracing.Session;
using static Hil.Workloads.Tests.TracingTestSupport;

namespace Hil.Workloads.Tests;

/// <summary>
/// ftrace text captured on the QEMU boards by the tracer → hil-cq-trace/1, without a board: event
/// mapping, waiter addresses, SMC kinds and results, session markers, lost events, and errors
/// that name the offending line.
/// </summary>
[TestFixture]
public class TracingConverterTests
{
    // Session tokens of the captured fixtures (the tracer names each event NAME_TOKEN).
    private const string Short612 = "7b8a5579", Short61 = "19fc520c", Xtest612 = "a1096d6c", Xtest61 = "527ec5d5";

    private static ProbePlan Plan(string kernel) => ProbePlanner.Plan(Facts(kernel, btfArgs: kernel == Kernel612), Listing(kernel));

    private static CqTraceHeader Header(string kernel) =>
        new(kernel == Kernel612 ? "mainline" : "legacy", 2, kernel, Plan(kernel).Kinds, kernel == Kernel612 ? "qemu-optee" : "qemu-optee-6.1");

    private static (string Json, ConversionStats Stats) Convert(string kernel, string token, string text, bool markers = true) =>
        (markers ? CqTraceConverter.For(Plan(kernel), token) : new CqTraceConverter(CqTraceConverter.For(Plan(kernel), token).Events))
            .ConvertText(text, Header(kernel));

    private static List<JsonElement> Events(string json) =>
        json.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();

    [Test]
    public void Kernel612_ShortXtest_ConvertsEveryLineAndTheModelAcceptsIt()
    {
        var (json, stats) = Convert(Kernel612, Short612, ReadFixture("ftrace-6.12-xtest-1001-1009.txt"));
        var header = JsonDocument.Parse(json.Split('\n')[0]).RootElement;
        var events = Events(json);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(header.GetProperty("format").GetString(), Is.EqualTo("hil-cq-trace/1"));
            Assert.That(header.GetProperty("policy").GetString(), Is.EqualTo("mainline"));
            Assert.That(header.GetProperty("lost_events").GetInt32(), Is.Zero);
            Assert.That(header.GetProperty("probes").EnumerateArray().Select(p => p.GetString()),
                Is.EqualTo(new[] { "wait_init", "admitted", "block", "woken", "complete", "final", "smc_begin", "smc_end", "sys_register", "close_begin" }));
            Assert.That((stats.Count(TraceKind.WaitInit), stats.Count(TraceKind.Final), stats.Count(TraceKind.Mark)), Is.EqualTo((25, 25, 2)));
            Assert.That(stats.Count(TraceKind.SmcBegin), Is.EqualTo(stats.Count(TraceKind.SmcEnd)));
            Assert.That(stats.Events, Is.EqualTo(events.Count));
            Assert.That(stats.OutsideSession + stats.Foreign, Is.Zero);
            Assert.That(stats.Lossy, Is.False);
        }
        var first = events[0];
        Assert.That(first.GetProperty("ev").GetString(), Is.EqualTo("mark"));
        var wait = events.First(e => e.GetProperty("ev").GetString() == "wait_init");
        Assert.That(wait.GetProperty("w").GetString(), Does.StartWith("0xffff"));
        Assert.That((wait.GetProperty("sys").GetInt32(), wait.GetProperty("total").GetInt32()), Is.EqualTo((0, 2)));

        var result = ConformanceChecker.CheckText(json, "ftrace-6.12-xtest-1001-1009");
        Assert.That(result.Conforms, Is.True, string.Join("\n", ConformanceRendering.Text(result)));
    }

    [Test]
    public void Kernel61_ShortXtest_ConvertsWithNormalCallsOnlyAndTheModelAcceptsIt()
    {
        var (json, stats) = Convert(Kernel61, Short61, ReadFixture("ftrace-6.1-xtest-1001-1009.txt"));
        var events = Events(json);
        Assert.That(stats.Count(TraceKind.WaitInit), Is.EqualTo(24));
        Assert.That(events.Where(e => e.GetProperty("ev").GetString() == "wait_init").Select(e => e.GetProperty("sys").GetInt32()), Has.All.Zero,
            "drivers before 6.8 have no system callers");
        Assert.That(events.Where(e => e.GetProperty("ev").GetString() == "admitted").SelectMany(e => e.EnumerateObject().Select(p => p.Name)),
            Has.None.EqualTo("free"), "no counters without thread counting");
        var result = ConformanceChecker.CheckText(json, "ftrace-6.1-xtest-1001-1009");
        Assert.That(result.Conforms, Is.True, string.Join("\n", ConformanceRendering.Text(result)));
    }

    [Test]
    public void Kernel61_Xtest1013_RefusedSmcsAndBothWakeUpSitesConvert()
    {
        var (json, stats) = Convert(Kernel61, Xtest61, ReadFixture("ftrace-6.1-xtest-1013-head.txt"));
        var events = Events(json);
        var results = events.Where(e => e.GetProperty("ev").GetString() == "smc_end").Select(e => e.GetProperty("result").GetString()).ToHashSet();
        Assert.That(results, Is.SupersetOf(new[] { "ok", "rpc", "ethread_limit" }));
        Assert.That(events.Where(e => e.GetProperty("ev").GetString() == "smc_begin").Select(e => e.GetProperty("smc").GetString()).Distinct(),
            Is.EquivalentTo(new[] { "call", "rpc_return" }));
        Assert.That(stats.Count(TraceKind.Block), Is.GreaterThan(0));
        // Both inlined wake-up sites of 6.1's wait_final map to "complete", with w = c - 0x10.
        var text = ReadFixture("ftrace-6.1-xtest-1013-head.txt");
        Assert.That(text, Does.Contain($"complete0_{Xtest61}:").And.Contain($"complete1_{Xtest61}:"));
        foreach (var c in events.Where(e => e.GetProperty("ev").GetString() == "complete"))
            Assert.That(System.Convert.ToUInt64(c.GetProperty("c").GetString(), 16) - System.Convert.ToUInt64(c.GetProperty("w").GetString(), 16), Is.EqualTo(0x10UL));
    }

    [Test]
    public void Kernel612_Xtest1013Window_WakeUpTargetsBecomeWaiterAddresses()
    {
        // A window cut out of a 1013 run (no session markers): read everything.
        var (json, stats) = Convert(Kernel612, Xtest612, ReadFixture("ftrace-6.12-xtest-1013-window.txt"), markers: false);
        var events = Events(json);
        var blocked = events.Where(e => e.GetProperty("ev").GetString() == "block").Select(e => e.GetProperty("w").GetString()).ToHashSet();
        var completed = events.Where(e => e.GetProperty("ev").GetString() == "complete").Select(e => e.GetProperty("w").GetString()).ToList();
        Assert.That(stats.Count(TraceKind.Complete), Is.GreaterThan(0));
        Assert.That(completed.Intersect(blocked), Is.Not.Empty, "a wake-up reaches a blocked waiter by the same address");
        var final = events.First(e => e.GetProperty("ev").GetString() == "final");
        Assert.That(final.GetProperty("done").GetInt32(), Is.AnyOf(0, 1));
    }

    [Test]
    public void SessionMarkersBoundTheTraceAndOtherMarksBecomeMarkEvents()
    {
        var text = string.Join('\n',
            "            sh-1     [000] .....    1.000000: optee_invoke_fn_begin: param=00 (32000013, 0, 0, 0, 0, 0, 0, 0)",
            "            sh-1     [000] .....    1.100000: tracing_mark_write: hil-trace begin abc",
            "            sh-1     [000] .....    1.200000: tracing_mark_write: hello",
            "  irq/17-optee_no-148    [001] d....    1.300000: optee_invoke_fn_end: param=00 ret (ffff0005, 0, 0, 0)",
            "            sh-1     [000] .....    1.350000: sched_switch: prev_comm=sh",
            "            sh-1     [000] .....    1.400000: tracing_mark_write: hil-trace end abc",
            "            sh-1     [000] .....    1.500000: optee_invoke_fn_end: param=00 ret (0, 0, 0, 0)");
        var (json, stats) = Convert(Kernel612, "abc", text);
        var events = Events(json);
        Assert.That(events.Select(e => e.GetProperty("ev").GetString()), Is.EqualTo(new[] { "mark", "smc_end" }));
        Assert.That(events[1].GetProperty("task").GetString(), Is.EqualTo("irq/17-optee_no-148"), "task names keep their dashes");
        Assert.That(events[1].GetProperty("result").GetString(), Is.EqualTo("rpc"));
        Assert.That((stats.OutsideSession, stats.Foreign), Is.EqualTo((2L, 1L)));
    }

    [TestCase("0", "ok")]
    [TestCase("1", "ethread_limit")]
    [TestCase("ffff0004", "rpc")]
    [TestCase("ffffffff", "error")]
    [TestCase("5", "error")]
    public void SmcResultsFollowTheOpteeSmcAbi(string a0, string result)
    {
        var (json, _) = Convert(Kernel612, "t", $"  xtest-1  [000] .....  1.000000: optee_invoke_fn_end: param=00 ret ({a0}, 0, 0, 0)", markers: false);
        Assert.That(Events(json).Single().GetProperty("result").GetString(), Is.EqualTo(result));
    }

    [TestCase("32000013", "call")]
    [TestCase("32000004", "call")]
    [TestCase("32000003", "rpc_return")]
    [TestCase("b200000f", "fast")]
    public void SmcKindsFollowTheOpteeSmcAbi(string id, string smc)
    {
        var (json, _) = Convert(Kernel612, "t", $"  xtest-1  [000] .....  1.000000: optee_invoke_fn_begin: param=00 ({id}, 0, 0, 0, 0, 0, 0, 0)", markers: false);
        Assert.That(Events(json).Single().GetProperty("smc").GetString(), Is.EqualTo(smc));
    }

    [Test]
    public void LostEventsAreCountedAndPutInTheHeader()
    {
        var text = string.Join('\n',
            "# entries-in-buffer/entries-written: 3/10   #P:2",
            "CPU:1 [LOST 5 EVENTS]",
            "##### CPU 0 buffer started ####",
            "  xtest-1  [000] .....  1.000000: optee_invoke_fn_end: param=00 ret (0, 0, 0, 0)");
        var (json, stats) = Convert(Kernel612, "t", text, markers: false);
        Assert.That((stats.LostEvents, stats.Lossy, stats.OverwrittenCpus.Single()), Is.EqualTo((12L, true, 0)));
        var header = JsonDocument.Parse(json.Split('\n')[0]).RootElement;
        Assert.That(header.GetProperty("lost_events").GetInt64(), Is.EqualTo(12));
        Assert.That(header.GetProperty("overwritten_cpus")[0].GetInt32(), Is.Zero);
    }

    [Test]
    public void InASharedBufferOnlyTheSessionCountsAndAMissingStartIsLoss()
    {
        var history = string.Join('\n',
            "# entries-in-buffer/entries-written: 3/10   #P:2",
            "##### CPU 0 buffer started ####",
            "            sh-1     [000] .....    1.100000: tracing_mark_write: hil-trace begin abc",
            "  xtest-1  [000] .....  1.200000: optee_invoke_fn_end: param=00 ret (0, 0, 0, 0)");
        var shared = CqTraceConverter.For(Plan(Kernel612), "abc", sharedBuffer: true);
        var (_, stats) = shared.ConvertText(history, Header(Kernel612));
        Assert.That((stats.Lossy, stats.Events), Is.EqualTo((false, 1L)), "another user's overwrites before the session are not ours");

        var (json, cut) = shared.ConvertText(history.Replace("hil-trace begin abc", "something else"), Header(Kernel612));
        Assert.That((cut.Lossy, cut.SessionStartMissing, cut.Events), Is.EqualTo((true, true, 0L)));
        Assert.That(json, Does.Contain("\"start_missing\":true"));
    }

    [Test]
    public void ATraceThatLostEventsIsNotJudged()
    {
        var plan = Plan(Kernel612);
        var dir = TempDir("lossy");
        var path = Path.Combine(dir, "t.jsonl");
        var (json, stats) = Convert(Kernel612, "t", "CPU:0 [LOST 1 EVENTS]", markers: false);
        File.WriteAllText(path, json);
        var capture = new TraceCapture(plan, "hil_t", "hil-t", [], "", new BufferLoss(0, 0, 0), new CleanupReport(true, [], []), TimeSpan.Zero, "t");
        var run = new TracedRun(plan, capture, Header(Kernel612), stats, path, path);
        Assert.That(run.Complete, Is.False);
        var ex = Assert.Throws<TracingException>(() => run.Check());
        Assert.That(ex!.Message, Does.Contain("lost events"));
        // An explicit request still checks it; this one kept no event at all, and a trace with no
        // events is bad input for the checker (issue 11: never "CONFORMS" on nothing).
        var empty = Assert.Throws<Hil.Model.Conformance.TraceFormatException>(() => run.Check(allowIncomplete: true));
        Assert.That(empty!.Message, Does.Contain("no events"));

        var missed = run with { Stats = new ConversionStats(), Capture = capture with { Loss = new BufferLoss(0, 0, 3) } };
        Assert.That(missed.Complete, Is.False, "kprobe misses are lost events too");
    }

    [TestCase("this is not ftrace", 1, "not an ftrace event line")]
    [TestCase("  xtest-1  [000] .....  1.000000: wait_init_t: (optee_cq_wait_init+0x0/0x160 [optee]) sys=0", 1, "field 'w' missing")]
    [TestCase("  xtest-1  [000] .....  1.000000: block_t: (optee_cq_wait_for_completion+0x0/0xb0 [optee]) w=0xzz", 1, "is not an address")]
    [TestCase("  xtest-1  [000] .....  1.000000: final_t: (optee_cq_wait_final+0x0/0xb0 [optee]) w=0x10 done", 1, "'done' is not name=value")]
    [TestCase("  xtest-1  [000] .....  1.000000: optee_invoke_fn_end: param=00 ret 0 0", 1, "no '(...)' value list")]
    [TestCase("\n  xtest-1  [000] .....  1.000000: wait_init_t: (optee_cq_wait_init+0x0/0x160 [optee]) w=0x1 free=lots", 2, "free=lots is not a number")]
    public void MalformedLinesFailNamingTheLine(string text, int line, string problem)
    {
        var ex = Assert.Throws<FtraceFormatException>(() => Convert(Kernel612, "t", text, markers: false));
        Assert.That(ex!.Line, Is.EqualTo(line));
        Assert.That(ex.Message, Does.StartWith($"ftrace line {line}:").And.Contain(problem));
    }

    [Test]
    public void ReturnProbeLinesAndTgidColumnsParse()
    {
        var text = string.Join('\n',
            "           xtest-190     [000] d....    51.929055: admitted_t: (optee_smc_do_call_with_arg+0x158/0x6a8 [optee] <- optee_cq_wait_init) free=1 sysreq=0",
            "           xtest-190   (  190) [001] ....    51.929056: complete_t: (optee_cq_complete_one+0x5c/0xc0 [optee]) c=0xffff800080713880");
        var (json, _) = Convert(Kernel612, "t", text, markers: false);
        var events = Events(json);
        Assert.That(events[0].GetProperty("free").GetInt32(), Is.EqualTo(1));
        Assert.That(events[1].GetProperty("w").GetString(), Is.EqualTo("0xffff800080713870"));
        Assert.That(events[1].GetProperty("cpu").GetInt32(), Is.EqualTo(1));
    }
}
