using Hil.Model.Core;

namespace Hil.Model.Conformance;

/// <summary>
/// Judges one trace line on one history: a trigger line (wait_init, woken, final) queues its
/// critical section to be placed later; an observation line (admitted, block, complete, smc_end…)
/// must be what the model's state allows; counters are compared with it.
/// </summary>
internal sealed class LineJudge(CriticalSections sections, FinalLookahead finals, Func<TraceKind, bool> probed, TraceStart start)
{
    private readonly List<Effect> _fx = [];

    private static void Fail(Hypothesis h, string reason) => h.FailReason ??= reason;

    /// <summary>One line on one history: what the model says about it (the history fails when it cannot explain it).</summary>
    public void Handle(Hypothesis h, in TraceEvent e)
    {
        var d = h.D;
        var t = e.Task >= 0 ? h.Task(e.Task) : null;
        switch (e.Kind)
        {
            case TraceKind.WaitInit:
            {
                if (t!.Call >= 0) { Fail(h, $"task starts a call while its call {h.Name(t.Call)} is still in flight"); return; }
                if (!CheckLeftovers(h, t)) return;
                // A waiter lives on its caller's stack: its address comes back (a new task's stack in
                // the same place) only once the call that had it is past wait_final, so a final of that
                // call still pending (inside the race window) ran before this wait_init.
                while (h.FailReason is null && h.CallOfWaiter.TryGetValue(e.Waiter, out var before)
                       && h.Pending.Exists(p => p.Call == before && p.Kind is TriggerKind.Final or TriggerKind.Forward))
                    sections.ApplyAt(h, CriticalSections.EarliestHead(h));
                if (h.FailReason is not null) return;
                if (h.CallOfWaiter.TryGetValue(e.Waiter, out var other)) { Fail(h, $"waiter address {e.Waiter:x} is already in flight ({h.Name(other)})"); return; }
                if (e.Total >= 0 && e.Total != d.Total) { Fail(h, $"the driver counts {e.Total} thread(s); the model was given {d.Total} (policy {d.Policy.Name}, {d.SecureThreads} secure threads)"); return; }
                if (e.SysReq >= 0 && e.SysReq != d.SysReqCount && !start.RegisterSeen && start.Seeds.SysReq is null && h.Pending.Count == 0)
                {
                    // The first counters tell how many system sessions were registered before the trace began.
                    start.Restart ??= start.Seeds with { SysReq = e.SysReq };
                    Fail(h, "system sessions registered before the trace began: checking again from the start");
                    return;
                }
                // Counters are read before the lock, and under emulation a vCPU can be preempted between
                // the event's timestamp and the read: a value may be older or newer than the line's
                // place. Each must be a state the model passes through near it (CheckRead).
                h.CheckRead(e.Line, e.Task, e.Time, d.Total > 0 ? e.Free : -1, e.SysReq);
                var call = h.Allocate(e.Waiter, e.Line, e.Task);
                t.Call = call;
                h.Pending.Add(new Pending(e.Task, TriggerKind.Arrive, call, e.Sys == 1, e.Line, e.Time));
                h.Stats.Calls++;
                if (e.Sys == 1) h.Stats.SysCalls++;
                return;
            }
            case TraceKind.Admitted:
            {
                if (t!.Call < 0) return;   // a wait_init we never saw (e.g. probes armed mid-call): nothing to check
                // Read on the way out, after the lock: the admission is in it.
                h.CheckRead(e.Line, e.Task, e.Time, d.Total > 0 ? e.Free : -1, e.SysReq, afterOwnLock: true);
                var ph = d.Phase(t.Call);
                if (ph is not (CallPhase.Admitted or CallPhase.InSecure))
                    Fail(h, $"{h.Name(t.Call)} is {ph.Label()}: {Explain.WhyBlocked(h, t.Call)}; the trace shows it let through");
                return;
            }
            case TraceKind.Block:
            {
                var call = start.Known(h, in e, SeedKind.Asleep);
                Attach(h, t!, e.Task, call);
                if (h.FailReason is not null) return;
                var ph = d.Phase(call);
                if (ph == CallPhase.Admitted)
                {
                    if (probed(TraceKind.SmcEnd))
                    {
                        Fail(h, $"{h.Name(call)} was admitted and no SMC of it was refused; the trace shows it sleeping");
                        return;
                    }
                    _fx.Clear();
                    d.SmcObserved(call, false, _fx);   // no SMC probes: a sleep after admission means the SMC was refused
                    h.Stats.Refusals++;
                    ph = d.Phase(call);
                }
                // Waking: its completion was already set, so wait_for_completion returns at once.
                if (!ph.IsAsleep() && ph is not (CallPhase.Waking or CallPhase.WakingRefused))
                {
                    Fail(h, $"{h.Name(call)} is {ph.Label()} (admitted at free={d.Free}); the trace shows it sleeping");
                    return;
                }
                h.Stats.Blocks++;
                return;
            }
            case TraceKind.Woken:
            {
                var call = start.Known(h, in e, SeedKind.Asleep);
                Attach(h, t!, e.Task, call);
                if (h.FailReason is not null) return;
                // Returned from wait_for_completion (possibly well before this probe: the wake step was
                // queued when the wake-up was delivered); the move to the tail and the re-check are two
                // more critical sections with no probe of their own: they follow before the task's next line.
                var wakeQueued = h.Pending.Any(p => p.Call == call && p.Kind == TriggerKind.Wake);
                if (!wakeQueued && !d.Phase(call).IsWaking())
                    h.Pending.Add(new Pending(e.Task, TriggerKind.Wake, call, d.IsSys(call), e.Line, e.Time));
                h.Pending.Add(new Pending(e.Task, TriggerKind.Requeue, call, d.IsSys(call), e.Line, e.Time));
                h.Pending.Add(new Pending(e.Task, TriggerKind.Recheck, call, d.IsSys(call), e.Line, e.Time));
                return;
            }
            case TraceKind.Complete:
            {
                var target = start.Known(h, in e, SeedKind.Running);
                if (h.FailReason is not null) return;
                if (t!.ExpectComplete.Count == 0)
                {
                    Fail(h, $"the model has no wake-up to hand out here ({Explain.WhyNoWake(h)}); the trace shows {h.Name(target)} completed");
                    return;
                }
                var expected = t.ExpectComplete.Dequeue();
                if (expected != target)
                    Fail(h, $"the wake-up goes to {h.Name(expected)} ({Explain.WakeRule(d)}); the trace shows {h.Name(target)}");
                return;
            }
            case TraceKind.Final:
            {
                var call = start.Known(h, in e, SeedKind.Running);
                Attach(h, t!, e.Task, call);
                if (h.FailReason is not null || !CheckLeftovers(h, t!)) return;
                if (e.Done >= 0 && (e.Done == 1) != d.IsDone(call)) h.Stats.CounterMismatches++;
                h.CheckRead(e.Line, e.Task, e.Time, d.Total > 0 ? e.Free : -1, e.SysReq);
                // The completion flag is judged where the wait_final runs (Apply).
                var final = new Pending(e.Task, TriggerKind.Final, call, d.IsSys(call), e.Line, e.Time) { DoneRead = e.Done };
                if (finals.Of(e.Line) is { Targets.Count: > 0 } inside)
                    final = final with { Order = inside.Targets[0].Line, Time = inside.Targets[0].Time };
                h.Pending.Add(final);
                return;
            }
            case TraceKind.SmcBegin:
            {
                if (e.Smc == SmcCall.Fast || t!.Call < 0) { h.Stats.IgnoredSmc++; return; }
                var ph = d.Phase(t.Call);
                if (e.Smc == SmcCall.RpcReturn)
                {
                    if (ph != CallPhase.InSecure) Fail(h, $"{h.Name(t.Call)} returns from an RPC but is {ph.Label()} in the model");
                    return;
                }
                if (ph != CallPhase.Admitted) Fail(h, $"{h.Name(t.Call)} issues an SMC but is {ph.Label()}: {Explain.WhyBlocked(h, t.Call)}");
                return;
            }
            case TraceKind.SmcEnd:
            {
                // The secure world's answer is the board's: the tracepoints bracket the SMC, so which
                // of two racing SMCs got the last thread cannot be told; what the driver does next is judged.
                if (t!.Call < 0) { h.Stats.IgnoredSmc++; return; }
                var ph = d.Phase(t.Call);
                _fx.Clear();
                switch (e.Result)
                {
                    case SmcResult.ThreadLimit:
                        if (ph != CallPhase.Admitted) { Fail(h, $"{h.Name(t.Call)} is {ph.Label()}; the trace shows its SMC refused"); return; }
                        d.SmcObserved(t.Call, false, _fx);
                        h.Stats.Refusals++;
                        return;
                    case SmcResult.Rpc:
                        if (ph == CallPhase.Admitted) d.SmcObserved(t.Call, true, _fx);
                        else if (ph != CallPhase.InSecure) Fail(h, $"{h.Name(t.Call)} is {ph.Label()}; the trace shows it in the secure world (RPC)");
                        return;
                    default:
                        if (ph == CallPhase.Admitted) d.SmcObserved(t.Call, true, _fx);
                        else if (ph != CallPhase.InSecure) { Fail(h, $"{h.Name(t.Call)} is {ph.Label()}; the trace shows its SMC returning"); return; }
                        d.Exit(t.Call, _fx);
                        return;
                }
            }
            case TraceKind.SysRegister:
            {
                start.RegisterSeen = true;
                var key = e.Session ?? $"task{e.Task}";
                if (e.Ok == 0)
                {
                    if (!h.Sessions.ContainsKey(key) && d.Policy.SystemSessionAllowed(d.Total))
                        Fail(h, $"policy {d.Policy.Name} accepts a system session with {d.Total} counted threads; the board refused it");
                    return;
                }
                if (h.Sessions.ContainsKey(key)) return;
                var id = h.Sessions.Count == 0 ? 0 : h.Sessions.Values.Max() + 1;
                _fx.Clear();
                if (!d.RegisterSystem(id, _fx)) { Fail(h, $"policy {d.Policy.Name} refuses system sessions here ({_fx[^1].Detail}); the board accepted one"); return; }
                h.Sessions[key] = id;
                return;
            }
            case TraceKind.CloseBegin:
                t!.CloseSys = e.Sys == 1;
                t.CloseSession = e.Session;
                return;
        }
    }

    /// <summary>Wake-ups the model handed out that the trace never showed, before the task's next call.</summary>
    private bool CheckLeftovers(Hypothesis h, TaskInfo t)
    {
        if (t.ExpectComplete.Count == 0) return true;
        var missing = string.Join(", ", t.ExpectComplete.Select(h.Name));
        Fail(h, $"the previous wait_final of this task wakes {missing} in the model; the trace shows no such complete");
        return false;
    }

    private static void Attach(Hypothesis h, TaskInfo t, int task, int call)
    {
        if (call < 0) return;
        if (t.Call < 0) { t.Call = call; h.TaskOf[call] = task; }   // a seeded waiter meets its task
        else if (t.Call != call) Fail(h, $"task is in call {h.Name(t.Call)} but the line names {h.Name(call)}");
    }

    /// <summary>Figures of the history after a line (most callers in the secure world at once).</summary>
    public static void Observe(Hypothesis h)
    {
        var (n, sys) = h.D.InSecureByClass();
        var st = h.Stats;
        st.MaxIn = Math.Max(st.MaxIn, n + sys); st.MaxNormal = Math.Max(st.MaxNormal, n); st.MaxSys = Math.Max(st.MaxSys, sys);
        if (h.D.SysReqCount > 0) st.MaxNormalWhileSys = Math.Max(st.MaxNormalWhileSys, n);
    }

}
