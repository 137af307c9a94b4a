using Hil.Model.Conformance;
using Hil.Model.Core;
using Hil.Model.Scenarios;
using Hil.Model.Simulation;

namespace Hil.Model.Tests;

/// <summary>The trace checker: accepts what the model allows, names the first event it forbids.</summary>
public class ConformanceTests
{
    internal static string TraceOf(Scenario sc)
    {
        var lines = new List<string>();
        var writer = new SimulatedTraceWriter(sc, lines.Add);
        Simulator.Run(sc, writer, keepEvents: false);
        writer.Complete();
        return string.Join("\n", lines) + "\n";
    }

    private const string Header = """{"type":"header","policy":"mainline","threads":2,"probes":["wait_init","admitted","block","woken","complete","final","smc_begin","smc_end"]}""";

    [TestCase("absorbed-wakeup")]
    [TestCase("total-minus-one")]
    [TestCase("etienne-v10-review")]
    [TestCase("scmi-deadlock")]
    [TestCase("jens-second-system-user")]
    [TestCase("v9-one-thread")]
    public void The_models_own_runs_conform(string scenario)
    {
        var sc = TestScenarios.Load(scenario);
        var r = ConformanceChecker.CheckText(TraceOf(sc), scenario);
        Assert.That(r.Conforms, Is.True, () => string.Join("\n", ConformanceRendering.Text(r)));
        Assert.That(r.Stats.Calls, Is.GreaterThan(0));
    }

    [Test]
    public void V9_forced_on_a_mainline_trace_diverges_at_the_first_normal_call_on_the_last_slot()
    {
        var trace = TraceOf(TestScenarios.Load("absorbed-wakeup"));
        var r = ConformanceChecker.CheckText(trace, "absorbed.jsonl", new ConformanceOptions(Policy.V9));
        Assert.That(r.Conforms, Is.False);
        var d = r.Divergence!;
        Assert.That(d.Task, Is.EqualTo("B-1001"));
        Assert.That(d.Event, Does.Contain("admitted"));
        Assert.That(d.Reason, Does.Contain("a normal caller needs free > 1 (v9), free is 1; the trace shows it let through"));
        Assert.That(d.StateBefore, Does.Contain("free=1/2"));
    }

    [Test]
    public void Fifo_wakeup_forced_on_a_mainline_trace_diverges_at_the_wakeup_target()
    {
        var trace = TraceOf(TestScenarios.Load("etienne-v10-review", Policy.Mainline));
        var r = ConformanceChecker.CheckText(trace, "etienne.jsonl", new ConformanceOptions(Policy.MainlineFifo));
        Assert.That(r.Conforms, Is.False);
        Assert.That(r.Divergence!.Event, Does.Contain("complete"));
        Assert.That(r.Divergence.Reason, Does.Contain("(first not-done entry of the list); the trace shows"));
        Assert.That(r.Divergence.Task, Is.EqualTo("SA-1009"), "the ending system call hands out the wake-up");
    }

    [Test]
    public void Legacy_trace_checked_as_mainline_diverges_where_the_board_refused_a_system_session()
    {
        var trace = TraceOf(TestScenarios.Load("scmi-deadlock"));
        Assert.That(ConformanceChecker.CheckText(trace).Conforms, Is.True);
        var r = ConformanceChecker.CheckText(trace, "scmi.jsonl", new ConformanceOptions(Policy.Mainline));
        Assert.That(r.Divergence!.Event, Does.Contain("sys_register"));
        Assert.That(r.Divergence.Reason, Does.Contain("accepts a system session"));
    }

    [Test]
    public void A_wakeup_the_model_gave_to_a_running_caller_cannot_wake_the_waiter()
    {
        var trace = TraceOf(TestScenarios.Load("absorbed-wakeup"));
        // Rewrite B's wake-up so that it reaches C instead of A, as a driver without the rule would.
        var lines = trace.Split('\n').ToList();
        var i = lines.FindIndex(l => l.Contains("\"task\":\"B-1001\",\"ev\":\"complete\""));
        Assert.That(i, Is.GreaterThan(0));
        lines[i] = lines[i].Replace(SimulatedTraceWriter.Waiter(0).ToString("x"), SimulatedTraceWriter.Waiter(2).ToString("x"));
        var r = ConformanceChecker.CheckText(string.Join("\n", lines));
        Assert.That(r.Divergence!.Line, Is.EqualTo(i + 1));
        Assert.That(r.Divergence.Reason, Does.StartWith($"the wake-up goes to w={SimulatedTraceWriter.Waiter(0):x}"));
    }

    [Test]
    public void Probe_order_differing_from_lock_order_is_accepted()
    {
        // B's wait_init probe fires before A's wait_final probe, but A took the lock first:
        // B is admitted at once and A's complete_one found nobody.
        var trace = Header.Replace("\"threads\":2", "\"threads\":1") + """

            {"t":0.0,"task":"A-1","ev":"wait_init","w":"a0","sys":0}
            {"t":0.0,"task":"A-1","ev":"admitted"}
            {"t":0.0,"task":"A-1","ev":"smc_begin","smc":"call"}
            {"t":1.0,"task":"B-2","ev":"wait_init","w":"b0","sys":0}
            {"t":1.1,"task":"A-1","ev":"smc_end","result":"ok"}
            {"t":1.1,"task":"A-1","ev":"final","w":"a0"}
            {"t":1.2,"task":"B-2","ev":"admitted"}
            {"t":1.2,"task":"B-2","ev":"smc_begin","smc":"call"}
            {"t":1.3,"task":"B-2","ev":"smc_end","result":"ok"}
            {"t":1.3,"task":"B-2","ev":"final","w":"b0"}

            """;
        var r = ConformanceChecker.CheckText(trace);
        Assert.That(r.Conforms, Is.True, () => string.Join("\n", ConformanceRendering.Text(r)));
        Assert.That(r.Stats.Reorderings, Is.EqualTo(1), "A's wait_final ran before B's wait_init although probed after it");
    }

    [Test]
    public void A_waiter_address_reused_by_a_new_task_soon_after_the_final_is_a_new_call()
    {
        // Seen on qemu-optee: sh-701's call ends, sh-703 (a new process, its stack in the same place)
        // starts one 98 ms later with the same waiter address, well inside the race window.
        var trace = Header + """

            {"t":0.0,"task":"A-1","ev":"wait_init","w":"a0","sys":0}
            {"t":0.0,"task":"A-1","ev":"admitted"}
            {"t":0.0,"task":"A-1","ev":"smc_begin","smc":"call"}
            {"t":0.2,"task":"A-1","ev":"smc_end","result":"ok"}
            {"t":0.2,"task":"A-1","ev":"final","w":"a0"}
            {"t":0.3,"task":"B-2","ev":"wait_init","w":"a0","sys":0}
            {"t":0.3,"task":"B-2","ev":"admitted"}
            {"t":0.3,"task":"B-2","ev":"smc_begin","smc":"call"}
            {"t":0.5,"task":"B-2","ev":"smc_end","result":"ok"}
            {"t":0.5,"task":"B-2","ev":"final","w":"a0"}

            """;
        var r = ConformanceChecker.CheckText(trace, "reuse.jsonl");
        Assert.That(r.Conforms, Is.True, () => string.Join("\n", ConformanceRendering.Text(r)));
        Assert.That(r.Stats.Calls, Is.EqualTo(2));
    }

    [Test]
    public void A_waiter_address_in_use_by_a_call_that_has_not_ended_diverges()
    {
        var trace = Header + """

            {"t":0.0,"task":"A-1","ev":"wait_init","w":"a0","sys":0}
            {"t":0.0,"task":"A-1","ev":"admitted"}
            {"t":0.1,"task":"B-2","ev":"wait_init","w":"a0","sys":0}

            """;
        var r = ConformanceChecker.CheckText(trace, "reuse.jsonl");
        Assert.That(r.Divergence!.Line, Is.EqualTo(4));
        Assert.That(r.Divergence.Reason, Does.Contain("is already in flight"));
    }

    [Test]
    public void The_same_race_with_an_impossible_outcome_diverges()
    {
        // One thread: B admitted while A is still inside and A never ends before: impossible.
        var trace = Header.Replace("\"threads\":2", "\"threads\":1") + """

            {"t":0.0,"task":"A-1","ev":"wait_init","w":"a0","sys":0}
            {"t":0.0,"task":"A-1","ev":"admitted"}
            {"t":1.0,"task":"B-2","ev":"wait_init","w":"b0","sys":0}
            {"t":1.2,"task":"B-2","ev":"admitted"}

            """;
        var r = ConformanceChecker.CheckText(trace, "race.jsonl");
        Assert.That(r.Divergence!.Line, Is.EqualTo(5));
        Assert.That(r.Divergence.Reason, Does.Contain("is blocked"));
    }

    [Test]
    public void A_trace_starting_mid_call_is_checked_with_that_call_in_flight()
    {
        var trace = Header + """

            {"t":0.5,"task":"B-2","ev":"wait_init","w":"b0","sys":0}
            {"t":0.5,"task":"B-2","ev":"admitted"}
            {"t":0.6,"task":"C-3","ev":"wait_init","w":"c0","sys":0}
            {"t":0.6,"task":"C-3","ev":"block","w":"c0"}
            {"t":1.0,"task":"A-1","ev":"final","w":"a0"}
            {"t":1.0,"task":"A-1","ev":"complete","w":"b0"}

            """;
        var r = ConformanceChecker.CheckText(trace);
        Assert.That(r.Conforms, Is.True, () => string.Join("\n", ConformanceRendering.Text(r)));
        Assert.That(r.Stats.PreexistingCalls, Is.EqualTo(1));
        Assert.That(r.Notes, Has.Some.Contains("already in flight"));
    }

    [Test]
    public void Counters_read_before_the_lock_are_compared_and_counted_but_the_thread_total_must_match()
    {
        // Entry probes read the counters before taking the lock, and under emulation a vCPU can stall
        // between the timestamp and the read: a differing value is reported, not a divergence.
        var trace = Header + """

            {"t":0.0,"task":"A-1","ev":"wait_init","w":"a0","sys":0,"free":2,"sysreq":0,"total":2}
            {"t":0.0,"task":"A-1","ev":"admitted"}
            {"t":0.1,"task":"B-2","ev":"wait_init","w":"b0","sys":0,"free":0,"sysreq":0,"total":2}

            """;
        var r = ConformanceChecker.CheckText(trace);
        Assert.That(r.Conforms, Is.True);
        Assert.That(r.Stats.CounterMismatches, Is.EqualTo(1), "free=0 was never the model's value");

        var wrongTotal = ConformanceChecker.CheckText(Header + "\n" + """{"t":0,"task":"A-1","ev":"wait_init","w":"a0","total":4}""" + "\n");
        Assert.That(wrongTotal.Divergence!.Reason, Does.StartWith("the driver counts 4 thread(s); the model was given 2"));
    }

    [Test]
    public void A_wakeup_consumed_before_its_woken_probe_may_be_hit_again_and_is_lost()
    {
        // Legacy, one thread: W is refused and sleeps; E1's end wakes it; W's vCPU returns from
        // wait_for_completion but is preempted before its woken probe; E2's end completes W again
        // (its completion was consumed) — the kernel's reinit_completion then erases that wake-up.
        var trace = """{"type":"header","policy":"legacy","threads":1,"probes":["wait_init","admitted","block","woken","complete","final","smc_begin","smc_end"]}""" + """

            {"t":0.00,"task":"E1-1","ev":"wait_init","w":"e1"}
            {"t":0.00,"task":"E1-1","ev":"admitted"}
            {"t":0.00,"task":"E1-1","ev":"smc_begin","smc":"call"}
            {"t":0.01,"task":"W-3","ev":"wait_init","w":"aa"}
            {"t":0.01,"task":"W-3","ev":"admitted"}
            {"t":0.01,"task":"W-3","ev":"smc_begin","smc":"call"}
            {"t":0.01,"task":"W-3","ev":"smc_end","result":"ethread_limit"}
            {"t":0.01,"task":"W-3","ev":"block","w":"aa"}
            {"t":0.10,"task":"E1-1","ev":"smc_end","result":"ok"}
            {"t":0.10,"task":"E1-1","ev":"final","w":"e1"}
            {"t":0.10,"task":"E1-1","ev":"complete","w":"aa"}
            {"t":0.11,"task":"E2-2","ev":"wait_init","w":"e2"}
            {"t":0.11,"task":"E2-2","ev":"admitted"}
            {"t":0.11,"task":"E2-2","ev":"smc_begin","smc":"call"}
            {"t":0.12,"task":"E2-2","ev":"smc_end","result":"ok"}
            {"t":0.12,"task":"E2-2","ev":"final","w":"e2"}
            {"t":0.12,"task":"E2-2","ev":"complete","w":"aa"}
            {"t":0.15,"task":"W-3","ev":"woken","w":"aa"}
            {"t":0.15,"task":"W-3","ev":"smc_begin","smc":"call"}
            {"t":0.16,"task":"W-3","ev":"smc_end","result":"ok"}
            {"t":0.16,"task":"W-3","ev":"final","w":"aa"}

            """;
        var r = ConformanceChecker.CheckText(trace, "lost.jsonl");
        Assert.That(r.Conforms, Is.True, () => string.Join("\n", ConformanceRendering.Text(r)));
        Assert.That(r.Stats.WakeupsLost, Is.EqualTo(1));
    }

    private const string LegacyHeader = """{"type":"header","policy":"legacy","threads":2,"probes":["wait_init","admitted","block","woken","complete","final","smc_begin","smc_end"]}""";

    // For hand-written traces that leave out the SMC lines: the header must not claim those probes
    // were armed (with them armed, a call without smc_begin/smc_end lines is a trace missing lines).
    private const string HeaderWithoutSmc = """{"type":"header","policy":"mainline","threads":2,"probes":["wait_init","admitted","block","woken","complete","final"]}""";
    private const string LegacyHeaderWithoutSmc = """{"type":"header","policy":"legacy","threads":2,"probes":["wait_init","admitted","block","woken","complete","final"]}""";

    // Mainline, two threads (a board history on 6.12): A absorbed B's wake-up, so A's wait_final
    // calls complete_one twice under the lock. The first wakes W; W returns from
    // wait_for_completion (no lock needed) before the second, which finds W first and not done and
    // completes it again — X stays asleep, and W's move to the tail erases the second wake-up.
    private const string ForwardRace = HeaderWithoutSmc + """

        {"t":0.000,"task":"A-1","ev":"wait_init","w":"a0","sys":0}
        {"t":0.000,"task":"A-1","ev":"admitted"}
        {"t":0.001,"task":"B-2","ev":"wait_init","w":"b0","sys":0}
        {"t":0.001,"task":"B-2","ev":"admitted"}
        {"t":0.002,"task":"W-3","ev":"wait_init","w":"aa","sys":0}
        {"t":0.002,"task":"W-3","ev":"block","w":"aa"}
        {"t":0.003,"task":"X-4","ev":"wait_init","w":"cc","sys":0}
        {"t":0.003,"task":"X-4","ev":"block","w":"cc"}
        {"t":0.100,"task":"B-2","ev":"final","w":"b0","done":0}
        {"t":0.100,"task":"B-2","ev":"complete","w":"a0"}
        {"t":0.200,"task":"A-1","ev":"final","w":"a0","done":1}
        {"t":0.200,"task":"A-1","ev":"complete","w":"aa"}
        {"t":0.202,"task":"W-3","ev":"woken","w":"aa"}
        {"t":0.204,"task":"A-1","ev":"complete","w":"SECOND"}
        {"t":0.205,"task":"W-3","ev":"admitted"}
        {"t":0.300,"task":"W-3","ev":"final","w":"aa","done":0}
        {"t":0.300,"task":"W-3","ev":"complete","w":"cc"}
        {"t":0.301,"task":"X-4","ev":"woken","w":"cc"}
        {"t":0.301,"task":"X-4","ev":"admitted"}
        {"t":0.400,"task":"X-4","ev":"final","w":"cc","done":0}

        """;

    [Test]
    public void A_wakeup_consumed_between_the_two_complete_ones_of_a_wait_final_is_completed_again()
    {
        var r = ConformanceChecker.CheckText(ForwardRace.Replace("SECOND", "aa"), "forward-race.jsonl");
        Assert.That(r.Conforms, Is.True, () => string.Join("\n", ConformanceRendering.Text(r)));
        Assert.That(r.Stats.WakeupsLost, Is.EqualTo(1), "W's move to the tail erases the second wake-up");

        // Without the race the forward reaches X, the next not-done entry: also a history the kernel allows.
        var atOnce = ConformanceChecker.CheckText(ForwardRace.Replace("SECOND", "cc").Replace(
            """{"t":0.300,"task":"W-3","ev":"complete","w":"cc"}""", ""), "forward-at-once.jsonl");
        Assert.That(atOnce.Conforms, Is.True, () => string.Join("\n", ConformanceRendering.Text(atOnce)));
        Assert.That(atOnce.Stats.WakeupsLost, Is.Zero);

        // B has ended: no order of the critical sections lets the forward reach it.
        var wrong = ConformanceChecker.CheckText(ForwardRace.Replace("SECOND", "b0"), "forward-wrong.jsonl");
        Assert.That(wrong.Conforms, Is.False);
        Assert.That(wrong.Divergence!.Line, Is.EqualTo(15));
    }

    [Test]
    public void Under_legacy_the_forward_may_complete_the_same_refused_caller_twice()
    {
        // A board history on 6.1: C's end lands on A (running); A's end wakes B (refused, asleep),
        // B consumes it, and A's forward completes B again: the model has no other entry to give it to.
        var trace = LegacyHeader + """

            {"t":0.000,"task":"A-1","ev":"wait_init","w":"a0"}
            {"t":0.000,"task":"A-1","ev":"admitted"}
            {"t":0.000,"task":"A-1","ev":"smc_begin","smc":"call"}
            {"t":0.001,"task":"C-2","ev":"wait_init","w":"c0"}
            {"t":0.001,"task":"C-2","ev":"admitted"}
            {"t":0.001,"task":"C-2","ev":"smc_begin","smc":"call"}
            {"t":0.002,"task":"B-3","ev":"wait_init","w":"b0"}
            {"t":0.002,"task":"B-3","ev":"admitted"}
            {"t":0.002,"task":"B-3","ev":"smc_begin","smc":"call"}
            {"t":0.002,"task":"B-3","ev":"smc_end","result":"ethread_limit"}
            {"t":0.002,"task":"B-3","ev":"block","w":"b0"}
            {"t":0.100,"task":"C-2","ev":"smc_end","result":"ok"}
            {"t":0.100,"task":"C-2","ev":"final","w":"c0","done":0}
            {"t":0.100,"task":"C-2","ev":"complete","w":"a0"}
            {"t":0.200,"task":"A-1","ev":"smc_end","result":"ok"}
            {"t":0.200,"task":"A-1","ev":"final","w":"a0","done":1}
            {"t":0.200,"task":"A-1","ev":"complete","w":"b0"}
            {"t":0.202,"task":"A-1","ev":"complete","w":"b0"}
            {"t":0.203,"task":"B-3","ev":"woken","w":"b0"}
            {"t":0.203,"task":"B-3","ev":"smc_begin","smc":"call"}
            {"t":0.204,"task":"B-3","ev":"smc_end","result":"ok"}
            {"t":0.204,"task":"B-3","ev":"final","w":"b0","done":0}

            """;
        var r = ConformanceChecker.CheckText(trace, "legacy-forward.jsonl");
        Assert.That(r.Conforms, Is.True, () => string.Join("\n", ConformanceRendering.Text(r)));
        Assert.That(r.Stats.WakeupsLost, Is.EqualTo(1));
    }

    [Test]
    public void A_wakeup_set_before_the_caller_sleeps_is_consumed_after_its_block_probe()
    {
        // Legacy (6.1, xtest 1013): B holds a wake-up it absorbed from Z. W is refused; A's end
        // completes W before W reaches wait_for_completion. W's block probe fires on the way in; until
        // W returns, its completion stays set, so B's end skips it and lands on D (running).
        var trace = LegacyHeader + """

            {"t":0.000,"task":"Z-1","ev":"wait_init","w":"f0"}
            {"t":0.000,"task":"Z-1","ev":"admitted"}
            {"t":0.000,"task":"Z-1","ev":"smc_begin","smc":"call"}
            {"t":0.001,"task":"B-2","ev":"wait_init","w":"b0"}
            {"t":0.001,"task":"B-2","ev":"admitted"}
            {"t":0.001,"task":"B-2","ev":"smc_begin","smc":"call"}
            {"t":0.050,"task":"Z-1","ev":"smc_end","result":"ok"}
            {"t":0.050,"task":"Z-1","ev":"final","w":"f0","done":0}
            {"t":0.050,"task":"Z-1","ev":"complete","w":"b0"}
            {"t":0.060,"task":"A-3","ev":"wait_init","w":"a0"}
            {"t":0.060,"task":"A-3","ev":"admitted"}
            {"t":0.060,"task":"A-3","ev":"smc_begin","smc":"call"}
            {"t":0.070,"task":"W-4","ev":"wait_init","w":"aa"}
            {"t":0.070,"task":"W-4","ev":"admitted"}
            {"t":0.070,"task":"W-4","ev":"smc_begin","smc":"call"}
            {"t":0.070,"task":"W-4","ev":"smc_end","result":"ethread_limit"}
            {"t":0.100,"task":"A-3","ev":"smc_end","result":"ok"}
            {"t":0.100,"task":"A-3","ev":"final","w":"a0","done":0}
            {"t":0.100,"task":"A-3","ev":"complete","w":"aa"}
            {"t":0.101,"task":"D-5","ev":"wait_init","w":"d0"}
            {"t":0.101,"task":"D-5","ev":"admitted"}
            {"t":0.101,"task":"D-5","ev":"smc_begin","smc":"call"}
            {"t":0.102,"task":"W-4","ev":"block","w":"aa"}
            {"t":0.200,"task":"B-2","ev":"smc_end","result":"ok"}
            {"t":0.200,"task":"B-2","ev":"final","w":"b0","done":1}
            {"t":0.200,"task":"B-2","ev":"complete","w":"d0"}
            {"t":0.201,"task":"W-4","ev":"woken","w":"aa"}
            {"t":0.201,"task":"W-4","ev":"smc_begin","smc":"call"}
            {"t":0.202,"task":"W-4","ev":"smc_end","result":"ok"}
            {"t":0.202,"task":"W-4","ev":"final","w":"aa","done":0}
            {"t":0.300,"task":"D-5","ev":"smc_end","result":"ok"}
            {"t":0.300,"task":"D-5","ev":"final","w":"d0","done":1}

            """;
        var r = ConformanceChecker.CheckText(trace, "wake-after-block.jsonl");
        Assert.That(r.Conforms, Is.True, () => string.Join("\n", ConformanceRendering.Text(r)));
        Assert.That(r.Stats.WakeupsAbsorbed, Is.EqualTo(2), "Z's wake-up by B, B's by D");
    }

    [Test]
    public void A_wait_final_that_shows_no_complete_may_not_wake_anyone_and_the_report_says_which_final()
    {
        // Legacy: A's end finds B first in the list and not done, so it must complete B; the trace
        // shows A's next call straight after its wait_final, without a complete line.
        var trace = LegacyHeaderWithoutSmc + """

            {"t":0.000,"task":"A-1","ev":"wait_init","w":"a0"}
            {"t":0.000,"task":"A-1","ev":"admitted"}
            {"t":0.001,"task":"B-2","ev":"wait_init","w":"b0"}
            {"t":0.001,"task":"B-2","ev":"admitted"}
            {"t":0.100,"task":"A-1","ev":"final","w":"a0","done":0}
            {"t":0.101,"task":"C-3","ev":"wait_init","w":"c0"}
            {"t":0.101,"task":"C-3","ev":"admitted"}
            {"t":0.200,"task":"A-1","ev":"wait_init","w":"a1"}

            """;
        var r = ConformanceChecker.CheckText(trace, "no-complete.jsonl");
        Assert.That(r.Conforms, Is.False);
        Assert.That(r.Divergence!.Line, Is.EqualTo(9), () => string.Join("\n", ConformanceRendering.Text(r)));
        // The wait_final is named by its own line and the waiter it would wake by its wait_init line,
        // not by a call id that a later call may have reused by the time the task's next line is read.
        Assert.That(r.Divergence.Reason, Does.Contain("wait_final of line 6 hands a wake-up to w=b0(line 4)"));
        Assert.That(r.Divergence.Reason, Does.Contain("the trace shows no complete from it"));
    }

    [Test]
    public void A_caller_preempted_between_its_wait_init_probe_and_the_lock_is_found_without_a_runaway_search()
    {
        // 901 lines of a board trace (xtest 1013 on 6.1; CI, 2026-11-27): xtest-292 fires its wait_init
        // probe, the optee notification IRQ thread preempts it on the same CPU and runs a whole call
        // (wait_init, SMC, wait_final without a complete line), then xtest-292 takes the lock. In line
        // order the IRQ thread's wait_final must complete xtest-292's entry, which the trace does not
        // show. The checker used to learn that only at the IRQ thread's next call a second later, and
        // its search for another order ran out of budget 800 lines on (a false divergence).
        var path = Path.Combine(TestContext.CurrentContext.TestDirectory, "Traces", "qemu-6.1-xtest1013-preempted-wait-init.jsonl");
        var r = ConformanceChecker.Check(() => File.OpenRead(path), path);
        Assert.That(r.Conforms, Is.True, () => string.Join("\n", ConformanceRendering.Text(r)));
        Assert.That(r.Stats.Reorderings, Is.GreaterThan(0), "the accepted history places a critical section out of probe order");
    }

    [TestCase("""{"t":0,"task":"A-1","w":"a0"}""", 2, "ev", "missing")]
    [TestCase("""{"t":0,"task":"A-1","ev":"wait_init"}""", 2, "w", "required")]
    [TestCase("""{"t":0,"task":"A-1","ev":"wait_init","w":"zz"}""", 2, "w", "not a hex address")]
    [TestCase("""{"t":0,"task":"A-1","ev":"fly","w":"a0"}""", 2, "ev", "unknown event 'fly'")]
    [TestCase("""{"t":0,"task":"A-1","ev":"wait_init","w":"a0","sys":2}""", 2, "sys", "must be 0, 1")]
    [TestCase("""{"t":"soon","task":"A-1","ev":"final","w":"a0"}""", 2, "t", "must be a number")]
    [TestCase("""not json""", 2, "(line)", "not valid JSON")]
    [TestCase("""{"t":0,"task":"A-1","ev":"smc_end"}""", 2, "result", "required")]
    public void Bad_trace_lines_name_line_and_field(string line, int lineNo, string field, string problem)
    {
        var ex = Assert.Throws<TraceFormatException>(() => ConformanceChecker.CheckText(Header + "\n" + line + "\n", "t.jsonl"))!;
        Assert.That((ex.Line, ex.Field), Is.EqualTo(((long)lineNo, field)), ex.Message);
        Assert.That(ex.Message, Does.Contain(problem));
        Assert.That(ex.Message, Does.StartWith($"t.jsonl:{lineNo}: {field}: "));
    }

    [Test]
    public void A_trace_without_policy_or_thread_count_is_refused_clearly()
    {
        var ex = Assert.Throws<TraceFormatException>(() => ConformanceChecker.CheckText("""{"t":0,"task":"A","ev":"wait_init","w":"1"}""" + "\n", "t.jsonl"))!;
        Assert.That(ex.Message, Does.StartWith("t.jsonl:1: policy: unknown"));
        var ex2 = Assert.Throws<TraceFormatException>(() => ConformanceChecker.CheckText("""{"t":0,"task":"A","ev":"wait_init","w":"1"}""" + "\n", "t.jsonl", new ConformanceOptions(Policy.Mainline)))!;
        Assert.That(ex2.Field, Is.EqualTo("threads"));
    }
}
