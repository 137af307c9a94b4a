using Hil.Boards.Failures;
using Hil.Model.Conformance;
using Hil.Model.Core;
using Hil.Model.Scenarios;
using Hil.Suites.Common;
using Hil.Workloads.Holder;
using Hil.Workloads.Kmod;
using Hil.Workloads.Tracing;
using Hil.Workloads.Xtest;

namespace Hil.Suites.SystemThreads;

/// <summary>
/// Linux v6.8's system threads, on a board: saturate OP-TEE's secure threads from user space
/// (teeholder) and from the kernel (hil_cq), with and without system sessions, trace the driver's
/// call queue, and judge each outcome by the reference model set up with the board's facts (the
/// kernel's policy, OP-TEE's thread count). Every traced run must also conform to the model event
/// by event — that is what keeps the board's 1 Hz background caller from making a test flaky: it
/// is in the trace, and the model accounts for it.
/// </summary>
[TestFixtureSource(typeof(BoardSelection), nameof(BoardSelection.Fixtures))]
[NonParallelizable]
public sealed class SystemThreadsSuite(BoardTarget target) : BoardSuite(target)
{
    private static readonly BoardTestOptions Budget = new() { Budget = TimeSpan.FromMinutes(12) };

    // ---- 1 -----------------------------------------------------------------------------------------

    [Test]
    public Task NormalCallers_MayOccupyEveryThread_WithoutSystemSessions() => OnBoardAsync(async t =>
    {
        var model = BoardModel.From(t.Facts);
        var bench = await Workbench.ForAsync(t, Boards.Log);
        const uint hold = 1500;
        var k = model.Threads;

        var scenario = model.Scenario("normal-saturation");
        for (var i = 0; i < k; i++) scenario.Client($"n{i}").Call(at: 0, hold: hold);
        var predicted = Concurrency(model.Simulate(scenario.Build()).Calls.Select(c => (c.EnteredAt / 1e6, c.EndedAt / 1e6)));

        KmodRun? run = null;
        var traced = await bench.Tracing.RunAsync(async (_, ct) =>
        {
            for (var i = 0; i < k; i++) await bench.Module.OpenAsync($"n{i}", SessionKind.Normal, ct);
            run = await bench.Module.RunAsync([.. Enumerable.Range(0, k).Select(i => new KmodCall($"n{i}", 0, hold))], leadMs: 50, ct: ct);
            await bench.Module.ResetAsync(ct);
        }, Path.Combine(t.OutputDirectory, "trace"), t.Token);

        var conformance = Judge(t, traced);
        RequireSucceeded(run!);
        var calls = TraceCalls.Read(traced.TracePath);
        var ours = run!.Calls.Select(r => TraceCalls.ForThread(calls, r.Tid, r.RequestNs)).ToList();
        Assert.That(ours, Has.None.Null, "every module call is in the trace");
        var observed = Concurrency(ours.Select(c => (c!.Enter, c.Final)));

        Figures.Record(t, "normal-saturation", $"{k} normal kernel calls at once, no system session: most inside OP-TEE together", predicted, observed, observed == predicted);
        Figures.Record(t, "normal-saturation", "normal callers inside OP-TEE at once (whole trace, incl. background)", model.Threads, conformance.Stats.MaxNormalInSecure, conformance.Stats.MaxNormalInSecure == model.Threads);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(observed, Is.EqualTo(predicted), "normal callers may occupy every secure thread");
            Assert.That(ours.Sum(c => c!.Blocks + c.Refusals), Is.Zero, "none of them had to wait");
        }
    }, Budget);

    // ---- 2, 3 --------------------------------------------------------------------------------------

    [Test]
    public Task SystemSessionRegistration_IsWhatTheModelSays() => OnBoardAsync(async t =>
    {
        var model = BoardModel.From(t.Facts);
        var bench = await Workbench.ForAsync(t, Boards.Log);
        var predicted = model.SystemSessionsAllowed ? SystemRegistration.Registered
            : model.Policy.SystemSessions == SystemSessionSupport.Unsupported ? SystemRegistration.Unsupported : SystemRegistration.Rejected;

        var session = await bench.Module.OpenAsync("sys", SessionKind.System, t.Token);
        var info = await bench.Module.ReadInfoAsync(t.Token);
        await bench.Module.ResetAsync(t.Token);

        Figures.Record(t, "system-registration", "tee_client_system_session()", predicted, session.System, session.System == predicted);
        t.Note($"module reports system sessions supported: {info.SystemSessionsSupported}; session 'sys': {session.System} (rc {session.SystemRc})");
        Assert.That(session.System, Is.EqualTo(predicted), $"model {model}");
        Assert.That(info.SystemSessionsSupported, Is.EqualTo(model.Policy.SystemSessions != SystemSessionSupport.Unsupported),
            "the module was built with tee_client_system_session() exactly when the kernel has it");
    }, Budget);

    [Test]
    public Task SystemCall_WhileUserSpaceSaturatesEveryThread_IsAdmittedAsTheModelPredicts() => OnBoardAsync(async t =>
    {
        var model = BoardModel.From(t.Facts);
        var bench = await Workbench.ForAsync(t, Boards.Log);
        const uint holderHold = 4000, callAt = 1000, callHold = 200;
        var k = model.Threads;

        // The prediction, from the facts: k user-space holders from t0, one kernel call on a session
        // asked to be a system session at t0+1 s (it stays normal where the kernel refuses).
        ScenarioBuilder Workload(bool background)
        {
            var s = model.Scenario("system-call-under-saturation");
            for (var i = 0; i < k; i++) s.Client($"holder{i}").Call(at: 0, hold: holderHold);
            s.Client("kernel", system: true).Call(at: callAt, hold: callHold);
            if (background) s.Client("background").Call(at: 0, hold: 1);
            return s;
        }
        var sim = model.Simulate(Workload(background: false).Build());
        var predictedWaitMs = sim.Call("kernel/c1").AdmissionLatency!.Value / 1000.0;
        // The bound: every interleaving, with a background normal caller like the board's.
        var bound = model.Explore(Workload(background: true).Build()).Stats.MaxNormalInSecureWhileSystemRegistered;

        KmodRun? run = null;
        HolderReport? holders = null;
        SystemRegistration registration = default;
        var traced = await bench.Tracing.RunAsync(async (_, ct) =>
        {
            registration = (await bench.Module.OpenAsync("sys", SessionKind.System, ct)).System;
            var running = await bench.Holder.StartAsync(HolderPlan.Saturate(k, holderHold), ct: ct);
            var holdersT0 = await running.WaitReadyAsync(TimeSpan.FromSeconds(60), ct);
            var now = (await bench.Module.ReadInfoAsync(ct)).NowNs;
            const uint lead = 10;
            var start = (uint)Math.Max(0, ((long)holdersT0 - (long)now) / 1_000_000 + callAt - lead);
            run = await bench.Module.RunAsync([new KmodCall("sys", start, callHold)], leadMs: lead, ct: ct);
            holders = await running.WaitAsync(ct);
            await bench.Module.ResetAsync(ct);
        }, Path.Combine(t.OutputDirectory, "trace"), t.Token);

        var conformance = Judge(t, traced);
        RequireSucceeded(run!);
        Assert.That(holders!.Succeeded, Is.True, $"teeholder: {string.Join("; ", holders.Errors)}");
        var calls = TraceCalls.Read(traced.TracePath);
        var kernelCall = TraceCalls.ForThread(calls, run!.Calls[0].Tid, run.Calls[0].RequestNs)
            ?? throw new ProductFailureException("the kernel call is not in the trace");
        var waitMs = kernelCall.AdmissionMs ?? throw new ProductFailureException("the kernel call never entered OP-TEE in the trace");
        var agrees = Math.Abs(waitMs - predictedWaitMs) <= Math.Max(500, 0.3 * predictedWaitMs);

        Figures.Record(t, "system-call-under-saturation", $"kernel call asked to be a system call, {k} user holders saturating: wait before entering OP-TEE (ms)",
            predictedWaitMs, Math.Round(waitMs), agrees);
        Figures.Record(t, "system-call-under-saturation", "normal callers inside OP-TEE at once while a system session is registered",
            bound < 0 ? "never registered" : bound, conformance.Stats.MaxNormalInSecureWhileSystemRegistered < 0 ? "never registered" : conformance.Stats.MaxNormalInSecureWhileSystemRegistered,
            conformance.Stats.MaxNormalInSecureWhileSystemRegistered == bound);
        Figures.Record(t, "system-call-under-saturation", "the kernel call was refused or blocked on its way in",
            sim.Call("kernel/c1").TimesBlocked > 0, kernelCall.Blocks + kernelCall.Refusals > 0, (sim.Call("kernel/c1").TimesBlocked > 0) == (kernelCall.Blocks + kernelCall.Refusals > 0));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(registration == SystemRegistration.Registered, Is.EqualTo(model.SystemSessionsAllowed), "system session registration");
            Assert.That(kernelCall.Sys, Is.EqualTo(model.SystemSessionsAllowed), "the call carried the sys flag exactly when registration succeeded");
            Assert.That(waitMs, Is.EqualTo(predictedWaitMs).Within(Math.Max(500, 0.3 * predictedWaitMs)),
                $"the kernel call's wait for a secure thread (model: {model})");
            Assert.That(conformance.Stats.MaxNormalInSecureWhileSystemRegistered, Is.EqualTo(bound),
                "most normal callers inside OP-TEE while a system session was registered: the model's bound, reached");
        }
    }, Budget);

    // ---- 4 -----------------------------------------------------------------------------------------

    [Test]
    public Task WakeupOrder_AbsorbedWakeup_CWaitsForA_AsTheModelPredicts() => OnBoardAsync(async t =>
    {
        var model = BoardModel.From(t.Facts);
        var bench = await Workbench.ForAsync(t, Boards.Log);
        // A long, B short, C blocked (kmod-facts' measurement), plus fillers when OP-TEE has more than
        // two threads so that C still finds them all busy.
        var plan = new List<KmodCall> { new("a", 0, 3000), new("b", 200, 1000) };
        for (var i = 0; i < model.Threads - 2; i++) plan.Add(new KmodCall($"f{i}", 100, 3000));
        plan.Add(new KmodCall("c", 400, 100));
        var scenario = model.Scenario("wakeup-order");
        foreach (var call in plan) scenario.Client(call.Session).Call(at: call.StartMs, hold: call.HoldMs);
        var sim = model.Simulate(scenario.Build());
        var predictedCEnterMs = sim.Call("c/c1").EnteredAt!.Value / 1000.0;
        var predictedAEndMs = sim.Call("a/c1").EndedAt!.Value / 1000.0;

        KmodRun? run = null;
        var traced = await bench.Tracing.RunAsync(async (_, ct) =>
        {
            foreach (var call in plan) await bench.Module.OpenAsync(call.Session, SessionKind.Normal, ct);
            run = await bench.Module.RunAsync(plan, leadMs: 50, ct: ct);
            await bench.Module.ResetAsync(ct);
        }, Path.Combine(t.OutputDirectory, "trace"), t.Token);

        var conformance = Judge(t, traced);
        RequireSucceeded(run!);
        var calls = TraceCalls.Read(traced.TracePath);
        TracedCall Of(string session)
        {
            var r = run!.Calls.Single(x => x.Session == session);
            return TraceCalls.ForThread(calls, r.Tid, r.RequestNs) ?? throw new ProductFailureException($"call on session {session} is not in the trace");
        }
        var (a, b, c) = (Of("a"), Of("b"), Of("c"));
        var t0 = run!.T0Ns / 1e9;
        var cEnterMs = (c.Enter!.Value - t0) * 1000;
        // What the model predicts for the traffic the board really had: the same calls with their
        // measured arrivals and times inside OP-TEE, the board's background caller included.
        var (asTraced, names) = TraceScenario.Build(model, calls, t0);
        var replay = model.Simulate(asTraced);
        t.Attach("as-traced.yaml", ScenarioWriter.ToYaml(asTraced), "the traced traffic as a scenario (hil model simulate as-traced.yaml)");
        t.Attach("as-traced.timeline.txt", string.Join("\n", Hil.Model.Execution.Rendering.SimulationText(replay)), "the model's replay of the traced traffic");
        var predictedFromTraceMs = replay.Call(names[c]).EnteredAt!.Value / 1000.0;
        // The scripted outcome is a pattern, not a time (A's measured end runs late by the module's
        // own overheads): in the replay of what the board did, C enters exactly when A ends. When
        // the background caller's call ends while A runs, C takes that wake-up instead.
        var scriptedHappened = Math.Abs(predictedFromTraceMs - replay.Call(names[a]).EndedAt!.Value / 1000.0) < 1;

        Figures.Record(t, "wakeup-order", "C (blocked) enters OP-TEE at, ms after t0 — scripted workload alone", predictedCEnterMs,
            Math.Round(cEnterMs), !scriptedHappened || Math.Abs(cEnterMs - predictedCEnterMs) < 300);
        Figures.Record(t, "wakeup-order", "C enters OP-TEE at, ms — the traced traffic (background caller included) replayed by the model",
            Math.Round(predictedFromTraceMs), Math.Round(cEnterMs), Math.Abs(cEnterMs - predictedFromTraceMs) <= 100);
        // A board-only figure: how many wake-ups a timed replay absorbs hangs on microsecond orderings
        // (an end and an arrival a few µs apart) that the probes see but a replay cannot reproduce;
        // the conformance check above has already judged each of these wake-ups against the model.
        Figures.Record(t, "wakeup-order", "wake-ups absorbed by running callers (whole trace, each one checked by the model)", "-",
            conformance.Stats.WakeupsAbsorbed, true);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(predictedCEnterMs, Is.EqualTo(predictedAEndMs), "the model, scripted workload: C waits for A's end, not B's");
            Assert.That(c.Blocks + c.Refusals, Is.GreaterThan(0), "C found every secure thread busy");
            Assert.That(cEnterMs, Is.EqualTo(predictedFromTraceMs).Within(100), "C entered when the model, replaying the traced traffic, says it should");
            if (scriptedHappened)
                Assert.That(c.Enter.Value, Is.GreaterThanOrEqualTo(a.Final!.Value - 0.005), "no interference: C entered only when A ended (B's wake-up went to running A)");
            else
                t.Note($"the board's background caller changed the outcome this run (C entered at {cEnterMs:0} ms, as the model predicts for the traffic traced; B ended at {(b.Final!.Value - t0) * 1000:0} ms, A at {(a.Final!.Value - t0) * 1000:0} ms)");
        }
    }, Budget);

    // ---- 5 -----------------------------------------------------------------------------------------

    [Test]
    public Task Xtest1013_ThreeClientsOnTwoThreads_TraceConformsToTheModel() => OnBoardAsync(async t =>
    {
        var bench = await Workbench.ForAsync(t, Boards.Log);
        XtestRun? xtest = null;
        var options = new XtestOptions { Cases = ["1013"], Timeout = TimeSpan.FromMinutes(6), Timestamps = false };
        var traced = await bench.Tracing.RunAsync(async (_, ct) =>
            xtest = await new XtestRunner(t.Board.Ssh, Boards.Log).RunAsync(options, ct), Path.Combine(t.OutputDirectory, "trace"), t.Token);
        t.Attach("xtest.log", $"$ {XtestRunner.CommandLine(options)}\n{xtest!.Output}", "xtest output");
        var conformance = Judge(t, traced);
        Figures.Record(t, "xtest-1013", "xtest -t regression 1013: call-queue events traced / conforming", conformance.Events, conformance.Conforms ? "all" : "no", conformance.Conforms);
        Figures.Record(t, "xtest-1013", "xtest -t regression 1013: callers that blocked or were refused", "-", conformance.Stats.Blocks + conformance.Stats.Refusals, true);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(xtest.Passed, Is.True, $"xtest {xtest.Command}");
            Assert.That(conformance.Stats.Calls, Is.GreaterThan(100), "xtest 1013 makes hundreds of calls");
            Assert.That(conformance.Stats.Blocks + conformance.Stats.Refusals, Is.GreaterThan(0), "three clients on two threads must contend");
        }
    }, Budget with { Budget = TimeSpan.FromMinutes(20) });

    // ---- the check can fail ------------------------------------------------------------------------

    [Test]
    public Task WrongModel_V9ForcedOnTheBoardsTrace_DivergesReadably() => OnBoardAsync(async t =>
    {
        var model = BoardModel.From(t.Facts);
        var bench = await Workbench.ForAsync(t, Boards.Log);
        var k = model.Threads;
        var traced = await bench.Tracing.RunAsync(async (_, ct) =>
        {
            for (var i = 0; i < k; i++) await bench.Module.OpenAsync($"n{i}", SessionKind.Normal, ct);
            RequireSucceeded(await bench.Module.RunAsync([.. Enumerable.Range(0, k).Select(i => new KmodCall($"n{i}", (uint)(i * 100), 800))], leadMs: 50, ct: ct));
            await bench.Module.ResetAsync(ct);
        }, Path.Combine(t.OutputDirectory, "trace"), t.Token);

        Judge(t, traced);   // the board's own policy: conforms
        var wrong = traced.Check(new ConformanceOptions(Policy.V9));
        t.Attach("conformance-forced-v9.txt", string.Join("\n", ConformanceRendering.Text(wrong)), "the same trace judged by v9");
        Figures.Record(t, "wrong-model", "same trace judged with v9 forced: first divergence",
            "diverges", wrong.Divergence is { } d ? $"line {d.Line}: {d.Event.Split(' ').ElementAtOrDefault(3)} {d.Event.Split(' ').ElementAtOrDefault(4)}" : "conforms", !wrong.Conforms);
        Assert.That(wrong.Conforms, Is.False, "v9 keeps the last slot even without system sessions: the board's admission of a normal call on it must diverge");
        var div = wrong.Divergence!;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(div.Line, Is.GreaterThan(1));
            Assert.That(div.Reason, Does.Contain("needs free > 1 (v9)"), div.Reason);
            Assert.That(div.StateBefore, Does.StartWith("free=1/"), "the state before names the one free slot");
        }
        t.Note($"forced v9: {string.Join(" | ", ConformanceRendering.Text(wrong).Where(l => l.StartsWith("DIVERGES") || l.StartsWith("  model")))}");
    }, Budget);

    // ---- helpers -----------------------------------------------------------------------------------

    /// <summary>The trace must be complete and conform to the board's own policy; the report goes with the test.</summary>
    private static ConformanceResult Judge(BoardTestContext t, TracedRun traced)
    {
        var result = traced.Check();
        var text = string.Join("\n", ConformanceRendering.Text(result));
        t.Attach("conformance.txt", text, "the trace judged by the model");
        t.Note($"trace {traced.TracePath}: {result.Events} events, {(result.Conforms ? "conforms" : "DIVERGES")}");
        if (!result.Conforms)
            throw new ProductFailureException($"the board's call-queue trace diverges from the model ({result.Policy.Name}) at line {result.Divergence!.Line}: {result.Divergence.Reason}",
                [.. ConformanceRendering.Text(result)]);
        return result;
    }

    private static void RequireSucceeded(KmodRun run)
    {
        if (!run.AllSucceeded)
            throw new ProductFailureException("a hil_cq call failed", [.. run.Calls.Select(c => c.ToString())]);
    }

    /// <summary>Most intervals open at one instant (ends before starts at a tie: back-to-back calls do not overlap).</summary>
    internal static int Concurrency(IEnumerable<(double? Start, double? End)> intervals)
    {
        var points = intervals.Where(i => i.Start is not null && i.End is not null)
            .SelectMany(i => new[] { (At: i.Start!.Value, Delta: 1), (At: i.End!.Value, Delta: -1) })
            .OrderBy(p => p.At).ThenBy(p => p.Delta);
        int now = 0, most = 0;
        foreach (var p in points) { now += p.Delta; most = Math.Max(most, now); }
        return most;
    }
}

/// <summary>Boards stay up across this assembly's fixtures; the A/B table is written when all are done.</summary>
[SetUpFixture]
public sealed class SystemThreadsRun : BoardsForWholeAssembly
{
    [OneTimeTearDown]
    public void WriteTable()
    {
        if (Figures.WriteTable() is { } table)
            TestContext.Progress.WriteLine($"system threads, model vs board ({Path.Combine(SuiteResults.Root, Figures.TableFile)}):\n{table}");
    }
}
