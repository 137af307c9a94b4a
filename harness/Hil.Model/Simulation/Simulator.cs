using Hil.Model.Core;
using Hil.Model.Execution;
using Hil.Model.Scenarios;

namespace Hil.Model.Simulation;

/// <summary>
/// Deterministic, timed run of a scenario.
///
/// Tie-breaking at one instant (stable, documented in the README):
/// 1. calls that end at this instant, one at a time in client order; a call released by a
///    dependency that ended at this instant ends after it;
///    wait_final's two complete_ones run back to back (on hardware the forward of an absorbed
///    wake-up follows within nanoseconds; the explorer also tries a woken caller between them);
/// 2. right after each end, the callers its wake-ups reached re-evaluate, in wake order (an SMC
///    refused before is retried at once);
/// 3. then the clients whose next step is due, in client order (arrivals and
///    tee_client_system_session());
/// and again from 1 while something is still due at this instant.
/// Sessions declared `system: true` are registered before time 0's first step.
/// </summary>
public static class Simulator
{
    public static SimulationResult Run(Scenario scenario, ITimelineSink? sink = null, bool keepEvents = true)
    {
        var run = new ScenarioRun(scenario);
        var calls = scenario.Calls;
        var n = calls.Count;
        var enteredAt = new long[n];
        var endedAt = new long[n];
        var stats = new CallStats[n];
        var clientFreeAt = new long[scenario.Clients.Count];
        var recorder = new Recorder(run, stats, sink, keepEvents);
        var findings = new List<Finding>();
        var fx = new List<Effect>();
        var strandedSince = new Dictionary<int, (long Since, string State)>();
        Array.Fill(endedAt, -1);
        Array.Fill(enteredAt, -1);
        for (var c = 0; c < n; c++) stats[c] = new CallStats(calls[c].Name);

        long now = 0;
        run.RegisterInitialSystemSessions(fx);
        recorder.Flush(fx, now);

        while (true)
        {
            var next = NextInstant(run, enteredAt, endedAt, clientFreeAt);
            if (next is null) break;
            now = next.Value;
            bool progressed;
            do
            {
                progressed = false;
                // 1 + 2: ends in client order, each followed by its wake-ups' re-evaluation.
                while (NextEndAt(run, now, enteredAt, endedAt) is { } ending)
                {
                    run.Apply(new Step(StepKind.End, ending), fx);
                    if (run.Driver.Phase(ending) == CallPhase.Forwarding) run.Apply(new Step(StepKind.Forward, ending), fx);
                    endedAt[ending] = now;
                    clientFreeAt[calls[ending].Client] = now;
                    var woken = fx.Where(e => e.Kind == EffectKind.Woken).Select(e => e.Subject).ToList();
                    recorder.Flush(fx, now);
                    foreach (var w in woken) Reevaluate(run, w, now, enteredAt, recorder, fx);
                    progressed = true;
                }
                // 3: due arrivals and registrations, in client order.
                for (var c = 0; c < scenario.Clients.Count; c++)
                {
                    var op = run.StartableOp(c);
                    if (op is null || Math.Max(op.At, clientFreeAt[c]) != now) continue;
                    run.Apply(new Step(op is RegisterSpec ? StepKind.Register : StepKind.Arrive, c), fx);
                    recorder.Flush(fx, now);
                    if (op is CallSpec cs) SmcIfAdmitted(run, cs.CallId, now, enteredAt, recorder, fx);
                    else clientFreeAt[c] = now;
                    progressed = true;
                }
            } while (progressed);

            TrackStranded(run, now, strandedSince, findings);
        }

        foreach (var (call, (since, state)) in strandedSince)
            findings.Add(Finding.Stranded(scenario, call, since, null, state));
        findings.AddRange(recorder.Invariants);
        var stuck = Enumerable.Range(0, n).Where(c => run.Driver.Phase(c) != CallPhase.Ended).ToList();
        var unstarted = Enumerable.Range(0, scenario.Clients.Count).Where(c => run.CurrentOp(c) is not null).ToList();
        if (unstarted.Count > 0)
            findings.Add(Finding.Deadlock(scenario, stuck, run, now));

        for (var c = 0; c < n; c++) stats[c] = stats[c] with { EndedAt = endedAt[c] >= 0 ? endedAt[c] : null };
        return new SimulationResult(scenario, recorder.Events, stats, findings, run, now);
    }

    /// <summary>A woken caller's three steps, back to back: wait_for_completion returns, it moves to the tail, it re-checks.</summary>
    private static void Reevaluate(ScenarioRun run, int call, long now, long[] enteredAt, Recorder recorder, List<Effect> fx)
    {
        if (!(run.Driver.Phase(call).IsAsleep() && run.Driver.IsDone(call))) return;
        run.Apply(new Step(StepKind.Wake, call), fx);
        run.Apply(new Step(StepKind.Requeue, call), fx);
        if (run.Driver.Phase(call) == CallPhase.Rechecking) run.Apply(new Step(StepKind.Recheck, call), fx);
        recorder.Flush(fx, now);
        SmcIfAdmitted(run, call, now, enteredAt, recorder, fx);
    }

    private static void SmcIfAdmitted(ScenarioRun run, int call, long now, long[] enteredAt, Recorder recorder, List<Effect> fx)
    {
        if (run.Driver.Phase(call) == CallPhase.Admitted)
        {
            run.Apply(new Step(StepKind.Smc, call), fx);
            recorder.Flush(fx, now);
        }
        if (run.Driver.Phase(call) == CallPhase.InSecure && enteredAt[call] < 0)
        {
            enteredAt[call] = now;
            recorder.MarkEntered(call, now);
        }
    }

    /// <summary>The call due to end at <paramref name="now"/> with the lowest client index, or null.</summary>
    private static int? NextEndAt(ScenarioRun run, long now, long[] enteredAt, long[] endedAt)
    {
        int? best = null;
        var calls = run.Scenario.Calls;
        var d = run.Driver;
        for (var i = 0; i < d.ListCount; i++)   // every in-flight call is in the list
        {
            var c = d.ListAt(i);
            if (d.Phase(c) != CallPhase.InSecure || !run.NeedsMet(c)) continue;
            if (DueAt(run, c, enteredAt, endedAt) != now) continue;
            if (best is null || calls[c].Client < calls[best.Value].Client) best = c;
        }
        return best;
    }

    private static long DueAt(ScenarioRun run, int call, long[] enteredAt, long[] endedAt)
    {
        var spec = run.Scenario.Calls[call];
        var due = enteredAt[call] + spec.Hold;
        foreach (var need in spec.Needs) due = Math.Max(due, endedAt[need]);
        return due;
    }

    private static long? NextInstant(ScenarioRun run, long[] enteredAt, long[] endedAt, long[] clientFreeAt)
    {
        long? next = null;
        var d = run.Driver;
        for (var i = 0; i < d.ListCount; i++)
        {
            var c = d.ListAt(i);
            if (d.Phase(c) == CallPhase.InSecure && run.NeedsMet(c))
                next = Min(next, DueAt(run, c, enteredAt, endedAt));
        }
        for (var c = 0; c < run.Scenario.Clients.Count; c++)
            if (run.StartableOp(c) is { } op)
                next = Min(next, Math.Max(op.At, clientFreeAt[c]));
        return next;
    }

    private static long? Min(long? a, long b) => a is null || b < a ? b : a;

    /// <summary>Stranding is judged once an instant has settled; the finding keeps the state it began in.</summary>
    private static void TrackStranded(ScenarioRun run, long now, Dictionary<int, (long Since, string State)> since, List<Finding> findings)
    {
        var s = run.Driver.FindStranded();
        foreach (var (call, (start, state)) in since.ToList())
        {
            if (call == s) continue;
            findings.Add(Finding.Stranded(run.Scenario, call, start, now, state));
            since.Remove(call);
        }
        if (s >= 0 && !since.ContainsKey(s)) since[s] = (now, run.DescribeStateBriefly());
    }

    /// <summary>Turns effects into timeline events and per-call figures.</summary>
    private sealed class Recorder(ScenarioRun run, CallStats[] stats, ITimelineSink? sink, bool keep)
    {
        private readonly long[] _blockedSince = Enumerable.Repeat(-1L, run.Scenario.Calls.Count).ToArray();
        public List<TimelineEvent> Events { get; } = [];
        public List<Finding> Invariants { get; } = [];

        public void MarkEntered(int call, long now) => stats[call] = stats[call] with { EnteredAt = now };

        // The counters as the last flushed step left them: the values before the step being flushed.
        private int _freeBefore = run.Driver.Free, _sysReqBefore = run.Driver.SysReqCount;

        public void Flush(List<Effect> fx, long now)
        {
            foreach (var e in fx) Record(e, now);
            fx.Clear();
            (_freeBefore, _sysReqBefore) = (run.Driver.Free, run.Driver.SysReqCount);
        }

        private void Record(Effect e, long now)
        {
            var sc = run.Scenario;
            string? name = e.Kind is EffectKind.SystemRegistered or EffectKind.SystemRefused or EffectKind.SystemUnregistered
                ? null : sc.CallName(e.Subject);
            var ev = e.Kind switch
            {
                EffectKind.Arrived => "arrive",
                EffectKind.Admitted => "admitted",
                EffectKind.Blocked => "blocked",
                EffectKind.Entered => "enter",
                EffectKind.Refused => e.Detail == "BUSY" ? "busy" : "ethread-limit",
                EffectKind.Woken => "woken",
                EffectKind.Absorbed => "absorbed",
                EffectKind.Ended => "end",
                EffectKind.Forwarded => "forward",
                EffectKind.WakeupLost => "wakeup-lost",
                EffectKind.SystemRegistered => "system-registered",
                EffectKind.SystemRefused => "system-refused",
                EffectKind.SystemUnregistered => "system-unregistered",
                EffectKind.InvariantBroken => "invariant-broken",
                _ => null,
            };
            if (name is not null)
            {
                var c = e.Subject;
                var s = stats[c];
                stats[c] = e.Kind switch
                {
                    EffectKind.Arrived => s with { ArrivedAt = now, Sys = run.Driver.IsSys(c) },
                    EffectKind.Admitted => s with { AdmittedAt = s.AdmittedAt ?? now },
                    EffectKind.Blocked or EffectKind.Refused => s with { TimesBlocked = s.TimesBlocked + 1 },
                    EffectKind.Absorbed => s with { WakeupsAbsorbed = s.WakeupsAbsorbed + 1 },
                    _ => s,
                };
                if (e.Kind is EffectKind.Blocked or EffectKind.Refused && _blockedSince[c] < 0) _blockedSince[c] = now;
                if (e.Kind is EffectKind.Admitted or EffectKind.Entered && _blockedSince[c] >= 0 && run.Driver.Phase(c) is CallPhase.Admitted or CallPhase.InSecure)
                {
                    stats[c] = stats[c] with { BlockedFor = stats[c].BlockedFor + (now - _blockedSince[c]) };
                    _blockedSince[c] = -1;
                }
            }
            if (e.Kind == EffectKind.InvariantBroken)
                Invariants.Add(Finding.Invariant(sc, e.Subject, e.Detail ?? "", now, run.DescribeStateBriefly()));
            if (ev is null) return;
            var subject = name ?? run.SessionName(e.Subject);
            var te = new TimelineEvent(now, name is null ? -1 : e.Subject, subject, ev, e.Detail,
                run.Driver.Free, run.Driver.SysReqCount, run.Driver.SecureFree, keep || sink is not null ? run.DescribeStateBriefly() : "",
                name is not null && run.Driver.IsSys(e.Subject), _freeBefore, _sysReqBefore);
            if (keep) Events.Add(te);
            sink?.Write(te);
        }
    }
}

/// <summary>Receives timeline events as they happen (to stream large runs, e.g. into a trace file).</summary>
public interface ITimelineSink
{
    void Write(TimelineEvent e);
}

/// <summary>One moment of a call's life. Times are microseconds from the scenario's start.</summary>
/// <param name="FreeBefore">free before the step this event is part of (what a probe before the lock reads).</param>
/// <param name="SysReqBefore">sys_req_count before that step.</param>
public sealed record TimelineEvent(long TimeUs, int Call, string Subject, string Event, string? Detail,
    int Free, int SysReq, int SecureFree, string State, bool Sys = false, int FreeBefore = -1, int SysReqBefore = -1);

/// <summary>What a call experienced (microseconds).</summary>
public sealed record CallStats(string Name = "", bool Sys = false, long? ArrivedAt = null, long? AdmittedAt = null,
    long? EnteredAt = null, long? EndedAt = null, int TimesBlocked = 0, long BlockedFor = 0, int WakeupsAbsorbed = 0)
{
    /// <summary>Arrival to entering the secure world.</summary>
    public long? AdmissionLatency => EnteredAt - ArrivedAt;
}

public sealed record SimulationResult(Scenario Scenario, IReadOnlyList<TimelineEvent> Events, IReadOnlyList<CallStats> Calls,
    IReadOnlyList<Finding> Findings, ScenarioRun Final, long EndTimeUs)
{
    /// <summary>The final state in the explorer's terms (built on demand: it names every call).</summary>
    public string Outcome => Final.Outcome();

    public bool HasFindings => Findings.Count > 0;
    public CallStats Call(string name) => Calls.First(c => c.Name == name);
}
