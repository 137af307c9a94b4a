using Hil.Boards.Failures;
using Hil.Model.Conformance;
using Hil.Model.Scenarios;
using Hil.Model.Simulation;
using Hil.Suites.Common;
using Hil.Workloads.Holder;
using Hil.Workloads.Kmod;
using Hil.Workloads.Tracing;
using Hil.Workloads.Tracing.Planning;
using static Hil.Suites.SystemThreads.TraceVerdicts;

namespace Hil.Suites.SystemThreads;

/// <summary>
/// Every rule of the call queue (../shared/spec/optee-call-queue.md), made to happen on the board:
/// each test scripts kernel calls (hil_cq; teeholder for user space) so that the driver must take
/// the path of one rule, traces it, and asks of the trace (1) that it conforms to the model under
/// the board's own policy, event by event, and (2) that the named behaviour happened as the model
/// says for the traffic the board really had — the traced calls, the board's 1 Hz background
/// caller included, replayed by the model. Expectations come from the model set up with the
/// board's facts (policy, thread count): on a kernel without system sessions the "system" sessions
/// stay normal and the same workload is judged by what that policy does with it.
/// <para>
/// The background caller can rearrange a workload (it takes a wake-up or a thread first). Where
/// that happens the model's replay says so: a test runs its workload again (at most
/// <see cref="Attempts"/> times, each attempt's trace judged) until the replay keeps the scripted
/// order of the test's own calls, and then asserts the board against that replay.
/// </para>
/// </summary>
[TestFixtureSource(typeof(BoardSelection), nameof(BoardSelection.Fixtures))]
[NonParallelizable]
public sealed class CallQueueRulesSuite(BoardTarget target) : BoardSuite(target)
{
    private static readonly BoardTestOptions Budget = new() { Budget = TimeSpan.FromMinutes(6) };

    /// <summary>How many times a workload may run before its scripted order must have shown.</summary>
    private const int Attempts = 3;

    /// <summary>Two entries closer than this (ms) have no order a test can assert.</summary>
    private const double OrderEpsilonMs = 5;

    // ---- rule: a system waiter queued behind normal waiters is woken first ---------------------------

    /// <summary>
    /// A (long) and S1 (system) take the threads; N (normal) then S2 (system) block, N ahead of S2.
    /// When S1 ends, mainline wakes the first not-done <b>system</b> entry: S2 enters at once, N
    /// waits. Under first-come wake-up (legacy, mainline-fifo) the wake-up goes to the list's head.
    /// </summary>
    [Test, Category("CallQueue")]
    public Task SystemWaiter_QueuedBehindNormalWaiters_IsWokenFirst() => OnBoardAsync(async t =>
    {
        var model = BoardModel.From(t.Facts);
        var bench = await Workbench.ForAsync(t, Boards.Log);
        var w = new Workload("system-first")
            .Session("a", SessionKind.Normal).Call("a", 0, 700)
            .Fillers(model.Threads - 2, 0, 700)
            .Session("s1", SessionKind.System).Call("s1", 50, 300)
            .Session("n", SessionKind.Normal).Call("n", 100, 50)
            .Session("s2", SessionKind.System).Call("s2", 150, 50);

        var x = await RunUntilScriptedAsync(t, bench, model, w);
        var (s1, n, s2) = (x.Of("s1"), x.Of("n"), x.Of("s2"));
        var figures = new FigureSheet(t, "rule-system-first", nameof(SystemWaiter_QueuedBehindNormalWaiters_IsWokenFirst));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(n.Arrive, Is.LessThan(s2.Arrive), "N reached the queue before S2");
            Assert.That(Waited(n) && Waited(s2), Is.True, "N and S2 both found no thread and waited");
            Assert.That(n.Enter > s1.Final && s2.Enter > s1.Final, Is.True, "both were still waiting when S1 ended");
            AssertEntries(x, figures);
            var replayFirst = x.EnteredFirst("n", "s2", replay: true);
            // Woken together (the replay has them enter at once), whoever takes the lock first decides under v9 whether the other is refused.
            var lockRace = x.RaceGroups().Where(g => g.Contains("n") && g.Contains("s2")).Select(x.LockRaceWentTheOtherWay).FirstOrDefault(r => r is not null);
            figures.AssertedAgainstReplay("of N (normal, queued first) and S2 (system, queued behind it), the one entering first", replayFirst, x.EnteredFirst("n", "s2", replay: false),
                Is.EqualTo(replayFirst), $"the caller the model wakes first ({model})", x.ReplayLimit ?? lockRace, how: "the trace's entries against the replay");
            AssertWakeupAtEnd(x, figures, "s1", "the wake-up S1's end hands out");
        }
    }, Budget);

    // ---- rule: closing the last system session lets a waiting normal caller in at once ---------------

    /// <summary>
    /// One system session registered, normal callers hold every thread but the kept one, N (normal)
    /// waits with that thread free. The session's CLOSE (a system call) runs while N waits; after
    /// it the driver uncounts the session and wakes a waiter, and N, now allowed the last thread,
    /// enters at once — not when the long call ends.
    /// </summary>
    [Test, Category("CallQueue")]
    public Task ClosingTheLastSystemSession_LetsAWaitingNormalCallerIn() => OnBoardAsync(async t =>
    {
        var model = BoardModel.From(t.Facts);
        var bench = await Workbench.ForAsync(t, Boards.Log);
        var w = new Workload("close-lets-in")
            .Session("a", SessionKind.Normal).Call("a", 0, 700)
            .Fillers(model.Threads - 2, 0, 700)
            .Session("n", SessionKind.Normal).Call("n", 100, 50)
            .Session("sys", SessionKind.System).Close("sys", 300);

        var x = await RunUntilScriptedAsync(t, bench, model, w);
        var (a, n, close) = (x.Of("a"), x.Of("n"), x.Of("sys"));
        var replayN = x.Replayed("n");
        var figures = new FigureSheet(t, "rule-close-lets-in", nameof(ClosingTheLastSystemSession_LetsAWaitingNormalCallerIn));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(close.Sys, Is.EqualTo(x.Registered("sys")), "the close is a system call exactly when the session was registered");
            AssertEntries(x, figures);
            figures.AssertedAgainstReplay("N waited for a thread (blocks + refusals > 0)", replayN.TimesBlocked > 0, Waited(n), Is.EqualTo(replayN.TimesBlocked > 0),
                "N waits exactly when the model's replay has it wait", x.ReplayLimit);
            var replayAfterClose = x.ReplayMs(replayN.EnteredAt) - x.ReplayMs(x.Replayed("sys").EndedAt);
            figures.AssertedAgainstReplay("N enters, ms after the close returned — the traced traffic replayed", Math.Round(replayAfterClose, 1), (n.Enter!.Value - close.Final!.Value) * 1000,
                Is.EqualTo(replayAfterClose).Within(x.Spread.Ms), $"N's entry against the close ({x.Spread.Describe()})", x.ReplayLimit,
                shown: Math.Round((n.Enter.Value - close.Final.Value) * 1000, 1), tolerance: x.Spread.Tolerance);
            // Whenever the replay lets N in before A ends, the board must not keep it until then.
            if (replayN.EnteredAt < x.Replayed("a").EndedAt && x.ReplayLimit is null)
                Assert.That(n.Enter!.Value, Is.LessThan(a.Final!.Value), "N entered before the long call ended: the close let it in");
        }
    }, Budget);

    // ---- rule: after a system session closes, normal callers may again fill every thread -------------

    /// <summary>
    /// A system session is opened, asked for twice (the driver counts a session once), and closed;
    /// before that, a system session is asked for on a session id that is not open (the driver
    /// refuses and counts nothing). Then as many normal calls as OP-TEE has threads, at once: all
    /// enter together, as the model says with no system session left.
    /// </summary>
    [Test, Category("CallQueue")]
    public Task AfterTheSystemSessionCloses_NormalCallersMayFillEveryThread() => OnBoardAsync(async t =>
    {
        var model = BoardModel.From(t.Facts);
        var bench = await Workbench.ForAsync(t, Boards.Log);
        // Not traced: the checker cannot tell a refused unknown session from a refused known one.
        var bogus = await bench.Module.RegisterIdAsync(BogusTeeSession, t.Token);
        t.Note($"tee_client_system_session() on TEE session {BogusTeeSession} (not open): rc {bogus.Rc}");
        var w = new Workload("fill-after-close");
        for (var i = 0; i < model.Threads; i++) w.Session($"n{i}", SessionKind.Normal).Call($"n{i}", 0, 400);
        // How many the model lets in together when nothing is registered: every thread under mainline,
        // one fewer under a policy that always keeps one back (v9).
        var scripted = model.Scenario("fill-after-close-scripted");
        for (var i = 0; i < model.Threads; i++) scripted.Client($"n{i}").Call(at: 0, hold: 400);
        var fill = SystemThreadsSuite.Concurrency(model.Simulate(scripted.Build()).Calls.Select(c => (c.EnteredAt / 1e6, c.EndedAt / 1e6)));
        KmodRecord? again = null;
        var x = await RunUntilScriptedAsync(t, bench, model, w, async (m, ct) =>
        {
            await m.OpenAsync("sys", SessionKind.System, ct);
            again = await m.RegisterAsync("sys", ct);
            await m.SendAsync([KmodCommand.Close("sys")], ct);
        }, y => y.Concurrency(replay: true) == fill);

        var ours = w.Steps.Select(s => x.Of(s.Session)).ToList();
        var figures = new FigureSheet(t, "rule-fill-after-close", nameof(AfterTheSystemSessionCloses_NormalCallersMayFillEveryThread));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(bogus.Rc, Is.Not.Zero, "a system session on a TEE session that is not open is refused");
            Assert.That(again!.Rc == 0, Is.EqualTo(model.SystemSessionsAllowed), "asking again for a registered system session succeeds exactly where system sessions exist");
            var predicted = x.Concurrency(replay: true);
            figures.AssertedAgainstReplay($"{model.Threads} normal calls at once after the system session closed: most inside OP-TEE together", predicted, x.Concurrency(replay: false),
                Is.EqualTo(predicted), "with no system session left, normal callers fill every thread (the replay of the traced traffic)", x.ReplayLimit);
            figures.AssertedAgainstReplay("sleeps of the calls", w.Steps.Sum(s => x.Replayed(s.Session).TimesBlocked), ours.Sum(c => c.Blocks),
                Is.EqualTo(w.Steps.Sum(s => x.Replayed(s.Session).TimesBlocked)), "sleeps of the calls: as in the replay", x.ReplayLimit);
            AssertEntries(x, figures);
        }
    }, Budget);

    /// <summary>A TEE session id no test opens (ids count up from 1 per boot).</summary>
    private const uint BogusTeeSession = 0x7ffffff0;

    // ---- rule: a woken caller that is refused goes behind the others ----------------------------------

    /// <summary>
    /// A system session is registered, so normal callers leave one thread free. A and S1 run; N1 and
    /// N2 block. S1's wake-up is absorbed by running A; S2 comes and goes, and its wake-up reaches
    /// N1, which is refused (the kept thread) and moves behind N2. When A ends, the wake-up goes to
    /// N2 first: N2 enters before N1.
    /// </summary>
    [Test, Category("CallQueue")]
    public Task WokenCallerThatIsRefused_GoesBehindTheOthers() => OnBoardAsync(async t =>
    {
        var model = BoardModel.From(t.Facts);
        var bench = await Workbench.ForAsync(t, Boards.Log);
        var w = new Workload("requeue")
            .Session("a", SessionKind.Normal).Call("a", 0, 600)
            .Fillers(model.Threads - 2, 0, 600)
            .Session("s1", SessionKind.System).Call("s1", 50, 100)
            .Session("n1", SessionKind.Normal).Call("n1", 80, 50)
            .Session("n2", SessionKind.Normal).Call("n2", 110, 50)
            .Session("s2", SessionKind.System).Call("s2", 200, 100);

        var x = await RunUntilScriptedAsync(t, bench, model, w);
        var (n1, n2) = (x.Of("n1"), x.Of("n2"));
        var figures = new FigureSheet(t, "rule-requeue", nameof(WokenCallerThatIsRefused_GoesBehindTheOthers));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(n1.Arrive, Is.LessThan(n2.Arrive), "N1 queued before N2");
            Assert.That(Waited(n1) && Waited(n2), Is.True, "N1 and N2 found no thread they may take and slept");
            // S2's end wakes N1 (the head); N1 is refused and goes behind N2, so A's end wakes N2 first
            // (and forwards the wake-up A had absorbed to N1). Which of two callers woken together
            // takes the lock first is left open by the model: the wake-ups are asserted, not that race.
            AssertWakeupAtEnd(x, figures, "s2", "the wake-up S2's end hands out");
            AssertWakeupAtEnd(x, figures, "a", "the wake-ups A's end hands out (first the caller now at the head)");
            AssertEntries(x, figures);
        }
    }, Budget);

    /// <summary>How long an ender of ours holds the queue's mutex after each wake-up it hands out (timing injection).</summary>
    private const uint StallUs = 15_000;
    private const int RequeueAttempts = 3;

    /// <summary>
    /// The other half of the requeue rule: a woken caller's completion is cleared when it moves to the
    /// tail. Every thread's call (the last one a system caller's, so that policies keeping a thread
    /// back let every thread be busy) ends at about the same moment while X and Y wait, a few rounds in a
    /// row. The first ender's wake-up is absorbed by the other (still listed) ender, whose end then
    /// wakes X and, holding an absorbed wake-up, scans the list again to forward it: if X has consumed
    /// its wake-up by then (no lock needed), it is "not done" again and is completed a second time.
    /// The driver must drop that second completion at X's requeue (Y then waits for X's end); a driver
    /// that keeps it lets X run with its completion set, which its wait_final shows (done=1) and
    /// forwards — the conformance check judges every wait_final's flag and wake-ups. Between the two
    /// scans lie microseconds, so hil_cq widens the window by timing injection: a kprobe just after
    /// the first complete() of an end (the site found in the driver's disassembly) busy-waits in
    /// hil_cq's own call threads only, the queue's mutex held; the driver and every other task are
    /// untouched. That the race happened (X completed twice by one end) is checked, so a test that
    /// never reached the window cannot pass as if it had.
    /// </summary>
    [Test, Category("CallQueue")]
    public Task WokenCallersRequeue_WithTheirCompletionCleared_WhenCallsEndAtOnce() => OnBoardAsync(async t =>
    {
        var model = BoardModel.From(t.Facts);
        var bench = await Workbench.ForAsync(t, Boards.Log);
        var rounds = Math.Clamp(KmodLimits.MaxSessions / (model.Threads + 2), 1, 3);
        var w = new Workload("ends-at-once");
        for (var r = 0; r < rounds; r++)
        {
            // Rounds 400 ms apart: each stalled wake-up holds the queue 15 ms, and a round must be over before the next.
            var at = (uint)(r * 400);
            // The last ender is a system caller: where a thread is kept for system callers (mainline with a
            // system session, v9 always) only then are all threads busy at once; on legacy it stays normal.
            // It starts 5 ms after the others: a normal caller arriving after it would find only the kept thread.
            for (var i = 0; i < model.Threads; i++)
            {
                var system = i == model.Threads - 1;
                w.Session($"e{r}{i}", system ? SessionKind.System : SessionKind.Normal).Call($"e{r}{i}", system ? at + 5 : at, 150);
            }
            w.Session($"x{r}", SessionKind.Normal).Call($"x{r}", at + 30, 20);
            w.Session($"y{r}", SessionKind.Normal).Call($"y{r}", at + 40, 20);
        }
        var plan = await bench.Tracing.PlanAsync(Path.Combine(t.OutputDirectory, "stall-plan"), t.Token);
        var site = plan.Code.FirstWakeUpReturn
            ?? throw new HilException(FailureClass.Test, "the driver's disassembly shows no bl complete in optee_cq_complete_one or optee_cq_wait_final to stall after; this test cannot widen the requeue window on it");
        t.Note($"stall: {site.Location}, {StallUs} us in hil_cq's call threads ({site.Evidence})");
        // Whether X consumes its wake-up inside the window is the scheduler's call (a woken task may
        // queue on the stalled CPU): up to RequeueAttempts runs, each one judged by the model.
        Attempt x = null!;
        var hits = 0;
        List<int> setUp = [];
        var raced = 0;
        for (var n = 1; n <= RequeueAttempts && raced == 0; n++)
        {
            try
            {
                x = await RunAttemptAsync(t, bench, model, w, n,
                    async (module, ct) => await module.StallAsync(site.Function, site.Offset, StallUs, ct));
            }
            finally
            {
                await bench.Module.StallOffAsync(CancellationToken.None);
            }
            hits = await bench.Module.StallHitsAsync(t.Token);
            var a = x;
            setUp = Enumerable.Range(0, rounds).Where(r => Waited(a.Of($"x{r}")) && Waited(a.Of($"y{r}"))).ToList();
            // X completed twice by one end: the race the rule is about, as the trace's complete lines show it.
            raced = setUp.Count(r =>
            {
                var xr = a.Of($"x{r}");
                return a.Wakeups.Where(v => v.Waiter == xr.Waiter && v.T >= xr.Arrive && v.T <= (xr.Enter ?? double.MaxValue))
                    .GroupBy(v => v.Task).Any(g => g.Count() >= 2);
            });
            t.Note($"attempt {n}: {setUp.Count} of {rounds} rounds set up, {raced} raced, stall hit {hits} times");
        }
        var figures = new FigureSheet(t, "rule-requeue-clears", nameof(WokenCallersRequeue_WithTheirCompletionCleared_WhenCallsEndAtOnce));
        figures.Informational("wake-ups stalled (the queue's mutex held) in hil_cq's enders", "-", $"{hits} ({StallUs} us each)",
            "timing injection widens the window; what the driver does is judged by the model alone");
        figures.Informational($"rounds (of {rounds}) where X and Y found every thread busy and slept", "-", setUp.Count, "the board's timing (the background caller may take a slot)");
        figures.Informational("rounds where one end completed X twice (X had consumed the first wake-up)", "-", raced, "the race the rule is about; at least one is required");
        if (setUp.Count == 0)
            throw new HilException(FailureClass.Test, $"ends-at-once: in none of {rounds} rounds did X and Y both find every thread busy (the board's background traffic); the rule was not exercised");
        if (raced == 0)
            throw new HilException(FailureClass.Test, $"ends-at-once: in {RequeueAttempts} attempts no end completed X twice (last: {setUp.Count} round(s) set up, stall hit {hits} times at {site.Location}); the requeue window was not reached (every attempt conformed to the model)");
        figures.Asserted("call-queue events of the run conforming to the model (every wait_final's done flag and wake-ups)", x.Conformance.Events, x.Conformance.Conforms,
            Is.True, "the trace conforms", shown: "all");
    }, Budget);

    // ---- rule: two system callers while user space saturates ------------------------------------------

    /// <summary>
    /// Jens Wiklander's second system user ("is one reserved thread enough?"): two system sessions
    /// registered, user space (teeholder) fills every thread it may, and two system calls come one
    /// after the other. Under mainline the first takes the kept thread at once and the second waits
    /// for it (one kept thread is not enough for two); the holders never get more than total - 1.
    /// </summary>
    [Test, Category("CallQueue")]
    public Task TwoSystemCallers_WhileUserSpaceSaturates_AreAdmittedAsTheModelPredicts() => OnBoardAsync(async t =>
    {
        var model = BoardModel.From(t.Facts);
        var bench = await Workbench.ForAsync(t, Boards.Log);
        const uint holderHold = 700;
        var k = model.Threads;
        var w = new Workload("two-system-callers")
            .Session("s1", SessionKind.System).Call("s1", 100, 200)
            .Session("s2", SessionKind.System).Call("s2", 150, 200);

        // The bound on normal callers while system sessions are registered: every interleaving, with a background caller.
        var explore = model.Scenario("two-system-callers-bound");
        for (var i = 0; i < k; i++) explore.Client($"holder{i}").Call(at: 0, hold: holderHold);
        explore.Client("s1", system: true).Call(at: 100, hold: 200);
        explore.Client("s2", system: true).Call(at: 150, hold: 200);
        explore.Client("background").Call(at: 0, hold: 1);
        var bound = model.Explore(explore.Build()).Stats.MaxNormalInSecureWhileSystemRegistered;

        Attempt? shown = null, fallback = null;
        for (var number = 1; number <= Attempts && shown is null; number++)
        {
            var x = await RunAttemptAsync(t, bench, model, w, number, null, holders: HolderPlan.Saturate(k, holderHold));
            t.Note($"attempt {number}: {x.Summary}");
            if (!x.KeepsScriptedOrder) continue;
            shown = x;
            if (x.ReplayLimit is not null && number < Attempts)
            {
                t.Note($"attempt {number}: the replay cannot follow it ({x.ReplayLimit}); trying again");
                shown = null;
                fallback = x;
            }
        }
        shown ??= fallback;
        if (shown is null) throw NotShown(w);
        var y = shown;
        var (s1, s2) = (y.Of("s1"), y.Of("s2"));
        var figures = new FigureSheet(t, "rule-two-system-callers", nameof(TwoSystemCallers_WhileUserSpaceSaturates_AreAdmittedAsTheModelPredicts));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(s1.Sys && s2.Sys, Is.EqualTo(model.SystemSessionsAllowed), "the calls carry sys exactly where system sessions exist");
            figures.AssertedAgainstReplay("S1 (first system call) waited for a thread", y.Replayed("s1").TimesBlocked > 0, Waited(s1), Is.EqualTo(y.Replayed("s1").TimesBlocked > 0),
                "the first system call waits exactly when the model's replay has it wait", y.ReplayLimit);
            figures.AssertedAgainstReplay("S2 (second system call) waited for a thread", y.Replayed("s2").TimesBlocked > 0, Waited(s2), Is.EqualTo(y.Replayed("s2").TimesBlocked > 0),
                "the second system call waits exactly when the model's replay has it wait", y.ReplayLimit);
            figures.Asserted("normal callers inside OP-TEE at once while a system session is registered", bound < 0 ? "never registered" : bound,
                y.Conformance.Stats.MaxNormalInSecureWhileSystemRegistered, Is.EqualTo(bound),
                "the model's bound over every interleaving with a background caller, reached and never passed",
                shown: y.Conformance.Stats.MaxNormalInSecureWhileSystemRegistered < 0 ? "never registered" : y.Conformance.Stats.MaxNormalInSecureWhileSystemRegistered);
            AssertEntries(y, figures);
        }
    }, Budget);

    // ---- rule: the forward of an absorbed wake-up --------------------------------------------------------

    /// <summary>
    /// A and B take the threads, C and D block. B's end wakes running A (absorbed). When A ends it
    /// wakes C and, since it had absorbed a wake-up, forwards one more (wait_final's second
    /// complete_one): D enters with C at A's end, not when C ends.
    /// </summary>
    [Test, Category("CallQueue")]
    public Task AbsorbedWakeup_IsForwardedWhenTheCallerEnds() => OnBoardAsync(async t =>
    {
        var model = BoardModel.From(t.Facts);
        var bench = await Workbench.ForAsync(t, Boards.Log);
        var w = new Workload("forward")
            .Session("a", SessionKind.Normal).Call("a", 0, 600)
            .Fillers(model.Threads - 2, 0, 600)
            .Session("b", SessionKind.Normal).Call("b", 50, 200)
            .Session("c", SessionKind.Normal).Call("c", 100, 50)
            .Session("d", SessionKind.Normal).Call("d", 150, 50);

        var x = await RunUntilScriptedAsync(t, bench, model, w);
        var (a, d) = (x.Of("a"), x.Of("d"));
        var figures = new FigureSheet(t, "rule-forward", nameof(AbsorbedWakeup_IsForwardedWhenTheCallerEnds));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Waited(x.Of("c")) && Waited(d), Is.True, "C and D found every thread busy");
            var replayForwards = x.Replay.Events.Count(e => e.Event == "forward" && e.Call == x.ReplayId(a));
            figures.Informational("wake-ups A's end forwards in the replay", "-", replayForwards, "the replay's count; the entries below are asserted");
            var replayDAfterA = x.ReplayMs(x.Replayed("d").EnteredAt) - x.ReplayMs(x.Replayed("a").EndedAt);
            figures.AssertedAgainstReplay("D enters, ms after A ended — the traced traffic replayed", Math.Round(replayDAfterA, 1), (d.Enter!.Value - a.Final!.Value) * 1000,
                Is.EqualTo(replayDAfterA).Within(x.Spread.Ms), $"D's entry against A's end ({x.Spread.Describe()})", x.ReplayLimit,
                shown: Math.Round((d.Enter.Value - a.Final.Value) * 1000, 1), tolerance: x.Spread.Tolerance);
            AssertWakeupAtEnd(x, figures, "a", "the wake-ups A's end hands out");
            AssertEntries(x, figures);
        }
    }, Budget);

    // ---- the engine ------------------------------------------------------------------------------------

    /// <summary>The call slept at least once (every sleep, after a refusal by the driver or by OP-TEE, is a block line).</summary>
    private static bool Waited(TracedCall c) => c.Blocks > 0;

    /// <summary>
    /// Board shell: wait (at most ~1.5 s) until OP-TEE's notification interrupt has just fired. Its
    /// bottom half is the board's 1 Hz background caller (kmod-facts.md), so a run started right
    /// after it has most of a second before the next one: the workloads fit their rule in that gap,
    /// and the background caller seldom races their wake-ups (when it does, the replay says so and
    /// the workload runs again). No such interrupt line: no wait.
    /// </summary>
    private const string AfterBackgroundCall =
        "a=$(grep optee /proc/interrupts); n=0; " +
        "while [ -n \"$a\" ] && [ \"$(grep optee /proc/interrupts)\" = \"$a\" ] && [ $n -lt 300 ]; do sleep 0.005; n=$((n+1)); done";

    private static HilException NotShown(Workload w) =>
        new(FailureClass.Test, $"{w.Name}: the board's background traffic reordered the scripted calls in all {Attempts} attempts " +
            "(every attempt conformed to the model; see trace/ and attempt-N/)", null);

    /// <summary>Runs the workload until the model's replay keeps the scripted order of its calls (and <paramref name="also"/> holds).</summary>
    private static async Task<Attempt> RunUntilScriptedAsync(BoardTestContext t, Workbench bench, BoardModel model, Workload w,
        Func<KmodDriver, CancellationToken, Task>? before = null, Func<Attempt, bool>? also = null)
    {
        Attempt? unfollowable = null;
        for (var number = 1; number <= Attempts; number++)
        {
            var x = await RunAttemptAsync(t, bench, model, w, number, before);
            t.Note($"attempt {number}: {x.Summary}");
            if (!x.KeepsScriptedOrder || !(also?.Invoke(x) ?? true)) continue;
            if (x.ReplayLimit is null) return x;
            // Judged and conforming, but the replay cannot follow it: another attempt may be one it can.
            t.Note($"attempt {number}: the replay cannot follow it ({x.ReplayLimit})");
            unfollowable = x;
        }
        return unfollowable ?? throw NotShown(w);
    }

    private static async Task<Attempt> RunAttemptAsync(BoardTestContext t, Workbench bench, BoardModel model, Workload w, int number,
        Func<KmodDriver, CancellationToken, Task>? before, HolderPlan? holders = null)
    {
        var prefix = number == 1 ? "" : $"attempt-{number}-";
        var dir = Path.Combine(t.OutputDirectory, number == 1 ? "trace" : $"attempt-{number}", number == 1 ? "" : "trace");
        KmodRun? run = null;
        HolderReport? held = null;
        var sessions = new Dictionary<string, KmodSessionInfo>();
        // Sessions are closed outside the trace (before and after it): the end-of-run closes of two
        // system sessions in a row are no part of any rule here, and judging them is the closing tests' job.
        await bench.Module.ResetAsync(t.Token);
        var traced = await bench.Tracing.RunAsync(async (_, ct) =>
        {
            if (before is not null) await before(bench.Module, ct);
            foreach (var (name, kind) in w.Sessions) sessions[name] = await bench.Module.OpenAsync(name, kind, ct);
            if (holders is null)
                run = await bench.Module.RunAsync(w.Steps, leadMs: 30, ct: ct, startAfter: AfterBackgroundCall);
            else
            {
                // The kernel calls' offsets count from the holders' time base.
                var running = await bench.Holder.StartAsync(holders, ct: ct);
                var holdersT0 = await running.WaitReadyAsync(TimeSpan.FromSeconds(60), ct);
                var now = (await bench.Module.ReadInfoAsync(ct)).NowNs;
                const uint lead = 10;
                var shift = (long)holdersT0 - (long)now - lead * 1_000_000L;
                var steps = w.Steps.Select(s => s with { StartMs = (uint)Math.Max(0, s.StartMs + shift / 1_000_000) }).ToList();
                run = await bench.Module.RunAsync(steps, leadMs: lead, ct: ct);
                held = await running.WaitAsync(ct);
            }
        }, dir, t.Token);
        await bench.Module.ResetAsync(t.Token);

        var conformance = Judge(t, traced, prefix);
        RequireSucceeded(run!);
        if (held is not null && !held.Succeeded) throw new ProductFailureException($"teeholder: {string.Join("; ", held.Errors)}");
        var calls = TraceCalls.Read(traced.TracePath);
        var t0 = (held?.T0Ns ?? run!.T0Ns) / 1e9;
        var ours = new Dictionary<string, TracedCall>();
        var scripted = new List<ScriptedCall>();
        foreach (var step in w.Steps)
        {
            var r = run!.Calls.Single(c => c.Session == step.Session);
            var c = TraceCalls.ForThread(calls, r.Tid, r.RequestNs) ?? throw new ProductFailureException($"attempt {number}: the {(step.IsClose ? "close" : "call")} of session {step.Session} is not in the trace");
            if (c.Enter is null || c.Final is null) throw new ProductFailureException($"attempt {number}: the call of session {step.Session} never entered OP-TEE or never ended in the trace");
            ours[step.Session] = c;
            scripted.Add(new ScriptedCall(step.Session, r.DueNs!.Value, r.RequestNs, step.HoldMs, c));
        }
        if (held is not null)
            foreach (var h in held.Calls)
            {
                var c = TraceCalls.ForThread(calls, h.Tid, h.RequestNs) ?? throw new ProductFailureException($"attempt {number}: holder {h.Index}'s call is not in the trace");
                ours[$"holder{h.Index}"] = c;
                scripted.Add(new ScriptedCall($"holder{h.Index}", h.DueNs, h.RequestNs, h.HoldMs, c));
            }
        var closes = w.Steps.Where(s => s.IsClose).Select(s => ours[s.Session]).ToHashSet();
        var end = ours.Values.Max(c => c.Final!.Value);
        var (asTraced, names) = Replay(model, calls.Where(c => c.Arrive <= end).ToList(), t0, closes);
        var replay = model.Simulate(asTraced);
        t.Attach($"{prefix}as-traced.yaml", ScenarioWriter.ToYaml(asTraced), "the traced traffic as a scenario (hil model simulate as-traced.yaml)");
        t.Attach($"{prefix}as-traced.timeline.txt", string.Join("\n", Hil.Model.Execution.Rendering.SimulationText(replay)), "the model's replay of the traced traffic");
        var script = model.Simulate(w.Scenario(model, holders));
        var wakeups = TraceCalls.Wakeups(traced.TracePath);
        return new Attempt(number, traced, conformance, calls, t0, replay, names, ours, sessions, script,
            TimingSpread.Of(scripted).WithWakeUps(ours.Select(kv => (kv.Key, kv.Value)), wakeups), wakeups, TraceCalls.Wokens(traced.TracePath),
            TraceCalls.Overtakings(traced.TracePath));
    }

    /// <summary>
    /// The traced traffic as a scenario, as <see cref="TraceScenario.Build"/> makes it, with one
    /// difference: a traced session close is a close in the scenario (after it the model uncounts
    /// the session and wakes a waiter), not an ordinary call.
    /// </summary>
    private static (Scenario, IReadOnlyDictionary<TracedCall, string>) Replay(BoardModel model, IReadOnlyList<TracedCall> calls, double t0, IReadOnlySet<TracedCall> closes)
    {
        var builder = model.Scenario("as-traced");
        var names = new Dictionary<TracedCall, string>();
        foreach (var task in calls.Where(c => c.Enter is not null && c.Final is not null && c.Final > t0).GroupBy(c => c.Task))
        {
            var client = task.Key.Replace('/', '_');
            builder.Client(client, system: task.Any(c => c.Sys));
            var i = 0;
            foreach (var c in task.OrderBy(c => c.Arrive))
            {
                var enter = Math.Max(c.Enter!.Value, t0);
                var at = Math.Max(0, (c.Arrive - t0) * 1000);
                var hold = Math.Max(0, (c.Final!.Value - enter) * 1000);
                i++;
                if (closes.Contains(c)) builder.Close(at: at, hold: hold);
                else builder.Call(at: at, hold: hold, id: $"c{i}");
                names[c] = $"{client}/c{i}";
            }
        }
        return (builder.Build(), names);
    }

    /// <summary>Every scripted call enters when the replay says, within the run's timing spread; and in the replay's order.</summary>
    /// <remarks>
    /// Callers the replay wakes at the same instant race for the lock, and the model leaves that race
    /// open (the conformance check accepts either winner): their entries are compared as a set — the
    /// board's earliest with the replay's earliest, and so on — and their mutual order is not asserted.
    /// </remarks>
    private static void AssertEntries(Attempt x, FigureSheet figures)
    {
        foreach (var group in x.RaceGroups())
        {
            var board = group.Select(n => (x.Of(n).Enter!.Value - x.T0) * 1000).Order().ToList();
            var replay = group.Select(n => x.ReplayMs(x.Replayed(n).EnteredAt)).Order().ToList();
            var byArrival = group.OrderBy(n => x.Of(n).Arrive).ToList();
            // A group mixing user-space holders with scripted calls: which holder thread the replay lets
            // in is arbitrary (they are interchangeable), and under a policy that keeps a thread back
            // that choice decides who is refused next; later entries are reported, the first asserted.
            var lockRace = x.LockRaceWentTheOtherWay(group)
                ?? (group.Count > 1 && group.Any(Attempt.IsHolder) && !group.All(Attempt.IsHolder)
                    ? "holders and scripted calls woken together: which holder thread gets in is no part of the model's prediction, and under a policy keeping a thread back it decides who is refused"
                    : null);
            for (var i = 0; i < group.Count; i++)
            {
                var name = group.Count == 1 ? byArrival[0] : $"{string.Join(" / ", byArrival)} (woken together), entry {i + 1}";
                if (i > 0 && lockRace is not null && Math.Abs(board[i] - replay[i]) > x.Spread.Ms)
                {
                    figures.Informational($"{name} enters OP-TEE at, ms after t0 — the traced traffic replayed by the model", Math.Round(replay[i], 1), Math.Round(board[i], 1), lockRace);
                    continue;
                }
                figures.AssertedAgainstReplay($"{name} enters OP-TEE at, ms after t0 — the traced traffic replayed by the model", Math.Round(replay[i], 1), board[i],
                    Is.EqualTo(replay[i]).Within(x.Spread.Ms), $"{name} entered when the model, replaying the traced traffic, says ({x.Spread.Describe()})",
                    x.ReplayLimit,
                    shown: Math.Round(board[i], 1), tolerance: x.Spread.Tolerance);
            }
        }
        var disagreements = x.OrderDisagreements(x.Spread.Ms);
        if (disagreements.Count > 0 && x.ReplayLimit is { } cannotFollow)
            figures.Informational("the scripted calls' order of entry — the traced traffic replayed by the model", "the replay's order", string.Join("; ", disagreements),
                $"the replay cannot follow this run ({cannotFollow}); the conformance check judged every event in the board's order");
        else
            Assert.That(disagreements, Is.Empty, "the scripted calls enter OP-TEE in the order of the model's replay");
    }

    /// <summary>Where wake-ups are traced: the first one a call's end hands out names the waiter the replay wakes at that end.</summary>
    private static void AssertWakeupAtEnd(Attempt x, FigureSheet figures, string ender, string measure)
    {
        var e = x.Of(ender);
        var handed = x.Wakeups.Where(v => v.Task == e.Task && v.T >= e.Final!.Value && v.T <= e.Final.Value + 0.5).ToList();
        var board = handed.Select(v => x.NameOfWaiter(v.Waiter, v.T)).ToList();
        var endedAt = x.Replayed(ender).EndedAt;
        var replay = x.Replay.Events.Where(v => v.TimeUs == endedAt && v.Call >= 0 && (v.Event == "woken" || v.Event == "absorbed"))
            .Select(v => x.NameOfReplayCall(v.Call)).ToList();
        if (x.Wakeups.Count == 0)
        {
            figures.Informational(measure, string.Join(", ", replay), "-", "this kernel's wake-ups are not traced (complete_one is inlined); the entries are asserted instead");
            return;
        }
        if (ConsumedBetweenScans(x, handed, board, replay) is { } race)
        {
            // The end scans the list once per wake-up, under the lock; the woken caller returns from
            // its wait without that lock, so it can consume the first wake-up before the second scan
            // and be "not done" again there. The replay has no such interleaving; the conformance
            // check (already passed) judged each scan against the trace's own order.
            figures.Asserted($"{measure}: the first", replay[0], board[0], Is.EqualTo(replay[0]),
                $"the first waiter {ender}'s end completes is the one the model's replay wakes", how: "the trace's complete lines against the replay");
            figures.Informational(measure, string.Join(", ", replay), string.Join(", ", board), race);
            return;
        }
        figures.AssertedAgainstReplay(measure, string.Join(", ", replay), string.Join(", ", board), Is.EqualTo(string.Join(", ", replay)),
            $"the waiters {ender}'s end completes (trace's complete lines) are those the model's replay wakes", x.ReplayLimit, how: "the trace's complete lines against the replay");
    }

    /// <summary>
    /// Where the board's wake-ups differ from the replay's only because a waiter woken by one scan
    /// had consumed it before the next scan completed it again: that race, described; otherwise null.
    /// </summary>
    private static string? ConsumedBetweenScans(Attempt x, IReadOnlyList<TracedWakeup> handed, IReadOnlyList<string> board, IReadOnlyList<string> replay)
    {
        if (board.Count != replay.Count || board.Count < 2 || board[0] != replay[0] || board.SequenceEqual(replay)) return null;
        var why = new List<string>();
        for (var i = 1; i < board.Count; i++)
        {
            if (board[i] == replay[i]) continue;
            var j = handed.Take(i).ToList().FindLastIndex(v => v.Waiter == handed[i].Waiter);
            if (j < 0) return null;
            // The driver never completes a waiter whose completion is still set, so a second wake-up to
            // the same waiter means it had consumed the first; its woken line may still come after the
            // second complete line (the probe sits after wait_for_completion's return, on another CPU).
            var woken = x.Wokens.FirstOrDefault(v => v.Waiter == handed[i].Waiter && v.T >= handed[j].T);
            if (woken is null) return null;
            why.Add($"{board[i]} consumed wake-up {j + 1} before wake-up {i + 1} scanned the list (its woken line {(woken.T - handed[j].T) * 1e6:0} µs after wake-up {j + 1})");
        }
        return $"a woken caller consumed its wake-up before the next scan ({string.Join("; ", why)}); the driver may do that, the replay has no such interleaving, and the conformance check judged each scan in the trace's order";
    }

    /// <summary>One run of a workload: traced, judged, replayed, and the scripted workload simulated alone.</summary>
    private sealed record Attempt(int Number, TracedRun Traced, ConformanceResult Conformance, IReadOnlyList<TracedCall> Calls, double T0,
        SimulationResult Replay, IReadOnlyDictionary<TracedCall, string> Names, IReadOnlyDictionary<string, TracedCall> Ours,
        IReadOnlyDictionary<string, KmodSessionInfo> Sessions, SimulationResult Script, TimingSpread Spread, IReadOnlyList<TracedWakeup> Wakeups,
        IReadOnlyList<TracedWakeup> Wokens, IReadOnlyList<Overtaking> Overtakings)
    {
        public TracedCall Of(string name) => Ours[name];

        public CallStats Replayed(string name) => Replay.Call(Names[Ours[name]]);

        /// <summary>
        /// Where, within the scripted calls' window, the run took a turn the timed replay cannot follow
        /// (<see cref="TraceCalls.Overtakings"/>), described; null when the replay can follow it all.
        /// </summary>
        public string? ReplayLimit => Overtaking.Before(Overtakings, T0, Ours.Values.Max(c => c.Final ?? c.Arrive));

        public int ReplayId(TracedCall c) => Replay.Calls.ToList().FindIndex(s => s.Name == Names[c]);

        public double ReplayMs(long? us) => us is { } v ? v / 1000.0 : double.NaN;

        public bool Registered(string session) => Sessions[session].System == SystemRegistration.Registered;

        /// <summary>The scripted call the model names <paramref name="call"/> (its index in the replay), or the replay's own name.</summary>
        public string NameOfReplayCall(int call)
        {
            var name = Replay.Calls[call].Name;
            return Ours.FirstOrDefault(kv => Names[kv.Value] == name).Key ?? name;
        }

        /// <summary>The call in flight at <paramref name="at"/> with waiter <paramref name="waiter"/>: a scripted call's name, else its name in the replay.</summary>
        public string NameOfWaiter(string waiter, double at)
        {
            var c = Calls.FirstOrDefault(c => c.Waiter == waiter && c.Arrive <= at && (c.Final ?? double.MaxValue) >= at);
            if (c is null) return waiter;
            return Ours.FirstOrDefault(kv => kv.Value == c).Key ?? (Names.TryGetValue(c, out var n) ? n : c.Task);
        }

        /// <summary>
        /// Which of two scripted calls entered OP-TEE first, on the board or in the replay; "both at once" when
        /// they entered closer than the board's timing spread (board) or <see cref="OrderEpsilonMs"/> (replay):
        /// two callers woken together race for the lock, and the model leaves that race open.
        /// </summary>
        public string EnteredFirst(string p, string q, bool replay)
        {
            double P, Q;
            if (replay) (P, Q) = (ReplayMs(Replayed(p).EnteredAt), ReplayMs(Replayed(q).EnteredAt));
            else (P, Q) = ((Of(p).Enter!.Value - T0) * 1000, (Of(q).Enter!.Value - T0) * 1000);
            // The board is only granted "at once" where the replay has the two enter together.
            var eps = replay ? OrderEpsilonMs : EnteredFirst(p, q, replay: true) == "both at once" ? Math.Max(OrderEpsilonMs, Spread.Ms) : 0;
            return Math.Abs(P - Q) <= eps ? "both at once" : P < Q ? p : q;
        }

        /// <summary>Most scripted calls inside OP-TEE at once, on the board or in the replay.</summary>
        public int Concurrency(bool replay) => SystemThreadsSuite.Concurrency(Ours.Keys.Select(n => replay
            ? ((double?)ReplayMs(Replayed(n).EnteredAt), (double?)ReplayMs(Replayed(n).EndedAt))
            : ((double?)((Of(n).Enter!.Value - T0) * 1000), (double?)((Of(n).Final!.Value - T0) * 1000))));

        /// <summary>Pairs of scripted calls that the board and the replay order differently (entries further apart than <paramref name="epsMs"/> in both; never two woken together).</summary>
        public IReadOnlyList<string> OrderDisagreements(double epsMs)
        {
            var groups = RaceGroups();
            // Holders are interchangeable (which holder thread got the thread first is their arrival race):
            // their entries are compared as a set in AssertEntries, not one by one here.
            return Disagree(n => (Of(n).Enter!.Value - T0) * 1000, n => ReplayMs(Replayed(n).EnteredAt), epsMs,
                skip: (p, q) => IsHolder(p) || IsHolder(q) || groups.Any(g => g.Contains(p) && g.Contains(q)));
        }

        /// <summary>
        /// Callers woken together take the lock in an order the model leaves open, and under a policy
        /// that keeps a thread back the winner decides whether the others are refused. Where the board's
        /// first to be admitted is not the replay's, the later entries follow from that order, not from
        /// the rules: described here (null when the orders agree). The conformance check, already passed,
        /// judged every admission in the board's own order.
        /// </summary>
        public string? LockRaceWentTheOtherWay(IReadOnlyList<string> group)
        {
            if (group.Count < 2) return null;
            var boardFirst = group.MinBy(n => Of(n).Enter!.Value)!;
            var ids = group.ToDictionary(n => ReplayId(Of(n)), n => n);
            var replayFirst = Replay.Events.FirstOrDefault(e => e.Event == "admitted" && ids.ContainsKey(e.Call)) is { } a ? ids[a.Call] : null;
            if (replayFirst is null || replayFirst == boardFirst) return null;
            return $"woken together, {boardFirst} took the lock first on the board and {replayFirst} in the replay; the model leaves that order open, " +
                   "the later entries follow from it, and the conformance check judged each admission in the board's order";
        }

        /// <summary>
        /// The scripted calls, grouped where the replay wakes two or more of them at the same instant
        /// (the ender's complete_one and the forward of an absorbed wake-up): such callers race for the lock.
        /// </summary>
        public static bool IsHolder(string name) => name.StartsWith("holder", StringComparison.Ordinal);

        public IReadOnlyList<IReadOnlyList<string>> RaceGroups()
        {
            var byCall = Ours.Keys.ToDictionary(n => ReplayId(Ours[n]), n => n);
            var parent = Ours.Keys.ToDictionary(n => n, n => n);
            string Find(string n) => parent[n] == n ? n : parent[n] = Find(parent[n]);
            // User-space holders are interchangeable: which holder thread got which slot is no part of any rule.
            var holders = Ours.Keys.Where(n => n.StartsWith("holder", StringComparison.Ordinal)).ToList();
            for (var i = 1; i < holders.Count; i++) parent[Find(holders[i])] = Find(holders[0]);
            foreach (var instant in Replay.Events.Where(e => e.Event == "woken" && byCall.ContainsKey(e.Call)).GroupBy(e => e.TimeUs))
            {
                var names = instant.Select(e => byCall[e.Call]).Distinct().ToList();
                for (var i = 1; i < names.Count; i++) parent[Find(names[i])] = Find(names[0]);
            }
            return Ours.Keys.GroupBy(Find).Select(g => (IReadOnlyList<string>)g.ToList()).ToList();
        }

        /// <summary>The replay keeps the order in which the scripted workload alone enters the test's calls (the background changed nothing that matters).</summary>
        public bool KeepsScriptedOrder =>
            Disagree(n => ReplayMs(Replayed(n).EnteredAt), n => ScriptMs(n), OrderEpsilonMs, scriptedOnly: true, skip: ScriptedTogether).Count == 0;

        /// <summary>Two calls the script starts at the same instant: which one arrives first is the board's race, and so is who waits.</summary>
        private bool ScriptedTogether(string p, string q) =>
            Script.Calls.FirstOrDefault(c => c.Name == $"{p}/c1")?.ArrivedAt is { } a && Script.Calls.FirstOrDefault(c => c.Name == $"{q}/c1")?.ArrivedAt is { } b && a == b;

        private double ScriptMs(string name) => Script.Calls.FirstOrDefault(c => c.Name == $"{name}/c1") is { EnteredAt: { } e } ? e / 1000.0 : double.NaN;

        private List<string> Disagree(Func<string, double> a, Func<string, double> b, double eps, bool scriptedOnly = false, Func<string, string, bool>? skip = null)
        {
            // User-space holders are interchangeable: which of them got the thread first is no part of a script.
            var names = Ours.Keys.Where(n => !scriptedOnly || !n.StartsWith("holder", StringComparison.Ordinal)).OrderBy(n => n, StringComparer.Ordinal).ToList();
            var bad = new List<string>();
            for (var i = 0; i < names.Count; i++)
                for (var j = i + 1; j < names.Count; j++)
                {
                    if (skip?.Invoke(names[i], names[j]) == true) continue;
                    var (ai, aj, bi, bj) = (a(names[i]), a(names[j]), b(names[i]), b(names[j]));
                    if (new[] { ai, aj, bi, bj }.Any(double.IsNaN) || Math.Abs(ai - aj) <= eps || Math.Abs(bi - bj) <= eps) continue;
                    if (ai < aj != bi < bj)
                        bad.Add($"{names[i]} {(ai < aj ? "before" : "after")} {names[j]} ({ai:0.#} / {aj:0.#} ms), against {(bi < bj ? "before" : "after")} ({bi:0.#} / {bj:0.#} ms)");
                }
            return bad;
        }

        public string Summary =>
            string.Join(", ", Ours.OrderBy(kv => kv.Value.Arrive).Select(kv => $"{kv.Key} in at {(kv.Value.Enter!.Value - T0) * 1000:0} ms (replay {ReplayMs(Replayed(kv.Key).EnteredAt):0})")) +
            $" — {(KeepsScriptedOrder ? "the scripted order" : "the background reordered the calls")}";
    }

    /// <summary>
    /// A test's kernel workload: sessions (normal, or asked to be system sessions), and one timed
    /// step per session — a TEE_Wait call or the session's close. The same workload, simulated
    /// alone by the model, is the scripted order a run must keep.
    /// </summary>
    private sealed class Workload(string name)
    {
        private readonly List<(string Name, SessionKind Kind)> _sessions = [];
        private readonly List<KmodCall> _steps = [];

        public string Name { get; } = name;
        public IReadOnlyList<(string Name, SessionKind Kind)> Sessions => _sessions;
        public IReadOnlyList<KmodCall> Steps => _steps;

        public Workload Session(string session, SessionKind kind)
        {
            _sessions.Add((session, kind));
            return this;
        }

        public Workload Call(string session, uint startMs, uint holdMs)
        {
            _steps.Add(new KmodCall(session, startMs, holdMs));
            return this;
        }

        public Workload Close(string session, uint startMs)
        {
            _steps.Add(KmodCall.Close(session, startMs));
            return this;
        }

        /// <summary>Normal calls that keep OP-TEE's threads beyond the two a rule needs busy (none on a two-thread board).</summary>
        public Workload Fillers(int count, uint startMs, uint holdMs)
        {
            for (var i = 0; i < count; i++) Session($"f{i}", SessionKind.Normal).Call($"f{i}", startMs, holdMs);
            return this;
        }

        /// <summary>The workload (and any user-space holders) as the model's scenario: a system session stays normal where the policy has none.</summary>
        public Scenario Scenario(BoardModel model, HolderPlan? holders)
        {
            var s = model.Scenario(Name);
            if (holders is not null)
                for (var i = 0; i < holders.Calls.Count; i++) s.Client($"holder{i}").Call(at: holders.Calls[i].StartMs, hold: holders.Calls[i].HoldMs);
            foreach (var step in _steps)
            {
                var system = model.SystemSessionsAllowed && _sessions.Single(x => x.Name == step.Session).Kind == SessionKind.System;
                s.Client(step.Session, system);
                if (step.IsClose) s.Close(at: step.StartMs);
                else s.Call(at: step.StartMs, hold: step.HoldMs);
            }
            return s.Build();
        }
    }
}
