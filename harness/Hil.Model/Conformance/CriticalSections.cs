using Hil.Model.Core;

namespace Hil.Model.Conformance;

/// <summary>
/// Runs one critical section whose probe has fired (a trigger) on one history: the driver state
/// changes as the kernel's would, the wake-ups it hands out become complete lines the trace must
/// show (checked against what the wait_final line was followed by) and wake steps of the sleepers.
/// A step the state does not allow fails the history.
/// </summary>
internal sealed class CriticalSections(FinalLookahead finals, Func<TraceKind, bool> probed)
{
    private readonly List<Effect> _fx = [];

    /// <summary>The pending step that comes first: per task only its first step can run; among those, the lowest order.</summary>
    public static int EarliestHead(Hypothesis h)
    {
        int best = -1;
        for (var i = 0; i < h.Pending.Count; i++)
        {
            var p = h.Pending[i];
            var first = true;
            for (var j = 0; j < i; j++) if (h.Pending[j].Task == p.Task) { first = false; break; }
            if (!first) continue;
            if (best < 0 || p.Order < h.Pending[best].Order) best = i;
        }
        return best;
    }

    public void ApplyAt(Hypothesis h, int index)
    {
        var p = h.Pending[index];
        // A wait_final owing its forward holds the lock: any other critical section comes after the
        // forward; only a return from wait_for_completion (lockless) may come between.
        if (h.D.Forwarding() >= 0 && p.Kind is not (TriggerKind.Wake or TriggerKind.Forward) && h.Pending.FindIndex(x => x.Kind == TriggerKind.Forward) is var f and >= 0)
        {
            ApplyAt(h, f);
            if (h.FailReason is not null) return;
            if (f < index) index--;
        }
        h.Pending.RemoveAt(index);
        Apply(h, p);
    }

    public static void Fail(Hypothesis h, string reason) => h.FailReason ??= reason;

    // ---- applying a trigger (one critical section) -----------------------------------------------

    private void Apply(Hypothesis h, Pending p)
    {
        var d = h.D;
        _fx.Clear();
        // A step the state does not allow is this history's failure, decided here (the driver
        // state would otherwise refuse it with an exception, which is for bugs, not for histories).
        if (NotAllowed(d, p) is { } why)
        {
            Fail(h, $"{h.Name(p.Call)} {why}");
            return;
        }
        switch (p.Kind)
        {
            case TriggerKind.Arrive:
                d.Arrive(p.Call, p.Sys, _fx);
                break;
            case TriggerKind.Wake:
                if (!(d.Phase(p.Call).IsAsleep() && d.IsDone(p.Call)))
                {
                    Fail(h, d.Phase(p.Call).IsAsleep()
                        ? $"no wake-up was delivered to {h.Name(p.Call)} (its completion is not done: {Explain.WhoGotIt(h)}), yet the trace shows it waking"
                        : $"{h.Name(p.Call)} is {d.Phase(p.Call).Label()}, not asleep, yet the trace shows it waking");
                    return;
                }
                d.Wake(p.Call, _fx);
                break;
            case TriggerKind.Requeue:
                d.Requeue(p.Call, _fx);
                foreach (var fx in _fx) if (fx.Kind == EffectKind.WakeupLost) h.Stats.Lost++;
                break;
            case TriggerKind.Recheck:
                // Only a caller that slept for a slot re-checks; a refused one went back to its SMC.
                if (d.Phase(p.Call) == CallPhase.Rechecking) d.Recheck(p.Call, _fx);
                break;
            case TriggerKind.Final:
                // A running caller's completion is never cleared (only a woken one clears its own):
                // read set at the probe, it is still set when wait_final takes the lock. Read clear and
                // set here is fine: the wake-up may have landed after the read.
                if (p.DoneRead == 1 && !d.IsDone(p.Call))
                {
                    Fail(h, $"the wait_final probe of line {p.Line} read {h.Name(p.Call)}'s completion set; in the model no wake-up landed on it ({Explain.WhoGotIt(h)})");
                    return;
                }
                if (d.Phase(p.Call) == CallPhase.Admitted) d.SmcObserved(p.Call, true, _fx);   // no SMC probes: the call ran
                if (d.Phase(p.Call) == CallPhase.RefusedAsleep)
                {
                    Fail(h, $"{h.Name(p.Call)} was refused a secure thread and never retried, yet it ends");
                    return;
                }
                h.Task(p.Task).Call = -1;
                h.Task(p.Task).FinalWakes = 0;
                if (d.Leave(p.Call, _fx))
                {
                    // The second complete_one is a step of its own: a caller woken by the first may
                    // consume its wake-up before it (the task's next complete line places it).
                    NoteWakeups(h, p);
                    h.Pending.Add(p with { Kind = TriggerKind.Forward });
                    break;
                }
                AfterFinal(h, p);
                break;
            case TriggerKind.Forward:
                d.Forward(p.Call, _fx);
                AfterFinal(h, p);
                break;
        }
        h.NoteCounters();
        h.ResolveReads(p.Task);
        foreach (var fx in _fx)
            if (fx.Kind == EffectKind.InvariantBroken) Fail(h, $"model invariant broken: {fx.Detail}");
    }

    /// <summary>Why the state cannot take this step now, or null when it can.</summary>
    private static string? NotAllowed(DriverState d, Pending p)
    {
        var ph = d.Phase(p.Call);
        return p.Kind switch
        {
            TriggerKind.Arrive when ph != CallPhase.NotArrived => $"is {ph.Label()}: it cannot arrive again",
            TriggerKind.Requeue when ph is not (CallPhase.Waking or CallPhase.WakingRefused) => $"is {ph.Label()}: it did not wake, so it cannot move to the tail",
            TriggerKind.Final when ph is not (CallPhase.Admitted or CallPhase.InSecure or CallPhase.Exited or CallPhase.RefusedAsleep) => $"is {ph.Label()}: it cannot end",
            TriggerKind.Forward when ph != CallPhase.Forwarding => $"is {ph.Label()}: it owes no forwarded wake-up",
            _ => null,
        };
    }

    /// <summary>wait_final is over: a closed system session is uncounted, the call's id is freed.</summary>
    private void AfterFinal(Hypothesis h, Pending p)
    {
        var d = h.D;
        var t = h.Task(p.Task);
        if (t.CloseSys)
        {
            var session = t.CloseSession is { } s && h.Sessions.TryGetValue(s, out var sid) ? sid
                : h.Sessions.Count > 0 ? h.Sessions.Values.First() : -1;
            if (session >= 0)
            {
                d.UnregisterSystem(session, _fx);
                h.Sessions.Remove(h.Sessions.First(kv => kv.Value == session).Key);
            }
            t.CloseSys = false;
        }
        NoteWakeups(h, p);
        t.FinalWakes = 0;
        h.Release(p.Call);
        // The TaskInfo stays: a task usually calls again soon, and allocating one per call costs more than it saves.
    }

    /// <summary>The wake-ups in <see cref="_fx"/>: the complete lines they must show, counts, and the woken callers' wake steps.</summary>
    private void NoteWakeups(Hypothesis h, Pending p)
    {
        var t = h.Task(p.Task);
        var complete = probed(TraceKind.Complete);
        var inside = complete ? finals.Of(p.Line) : null;
        foreach (var fx in _fx)
        {
            if (fx.Kind is not (EffectKind.Woken or EffectKind.Absorbed)) continue;
            if (complete) t.ExpectComplete.Enqueue(fx.Subject);
            var k = t.FinalWakes++;
            if (inside is not null && (k < inside.Targets.Count ? inside.Targets[k].Waiter != h.WaiterOf[fx.Subject] : inside.Closed))
            {
                Fail(h, k < inside.Targets.Count
                    ? $"the wake-up goes to {h.Name(fx.Subject)} ({Explain.WakeRule(h.D)}); the trace shows {Explain.NameOf(h, inside.Targets[k].Waiter)} completed at line {inside.Targets[k].Line} (wake-up {k + 1} of the wait_final of line {p.Line})"
                    : $"wait_final of line {p.Line} hands a wake-up to {h.Name(fx.Subject)} ({Explain.WakeRule(h.D)}); the trace shows {(k == 0 ? "no complete from it" : $"only {k} complete line(s) from it")}");
                return;
            }
            h.Stats.Wakeups++;
            if (fx.Kind is EffectKind.Absorbed) { h.Stats.Absorbed++; continue; }
            // The sleeper may return from wait_for_completion any time from now, even before its own
            // woken probe fires (its vCPU can be preempted in between). Usually it is later, so this
            // step is placed last unless a line needs it earlier.
            if (h.TaskOf[fx.Subject] is var wt and >= 0)
                h.Pending.Add(new Pending(wt, TriggerKind.Wake, fx.Subject, h.D.IsSys(fx.Subject), p.Line, double.MaxValue) { Order = long.MaxValue });
        }
    }

}
