using Hil.Model.Core;

namespace Hil.Model.Tests;

/// <summary>Each transition rule of each policy, on a bare <see cref="DriverState"/>.</summary>
public class TransitionRuleTests
{
    private readonly List<Effect> _fx = [];

    private List<EffectKind> Kinds() => _fx.Select(e => e.Kind).ToList();

    private static DriverState Driver(Policy p, int threads = 2, int calls = 8, int sessions = 4) => new(p, threads, null, calls, sessions);

    // ---- admission --------------------------------------------------------------------------------

    [TestCase("v9", false, 0, 2, true)]
    [TestCase("v9", false, 0, 1, false)]       // always one slot kept
    [TestCase("v9", true, 0, 1, true)]
    [TestCase("mainline", false, 0, 1, true)]  // no system session: the last slot is anyone's
    [TestCase("mainline", false, 1, 1, false)] // a system session: the last slot is kept
    [TestCase("mainline", false, 1, 2, true)]
    [TestCase("mainline", true, 1, 1, true)]
    [TestCase("mainline-fifo", false, 1, 1, false)]
    [TestCase("mainline-fifo", true, 1, 1, true)]
    public void Counted_admission_follows_the_threshold(string policy, bool sys, int sysSessions, int free, bool admitted)
    {
        var d = Driver(Policy.Find(policy)!, threads: 4);
        for (var s = 0; s < sysSessions; s++) Assert.That(d.RegisterSystem(s, _fx), Is.True);
        for (var c = 0; c < 4 - free; c++) d.Arrive(c, true, _fx);   // system holders use up the slots
        Assert.That(d.Free, Is.EqualTo(free));
        _fx.Clear();
        d.Arrive(7, sys, _fx);
        Assert.That(Kinds(), Is.EqualTo(new[] { EffectKind.Arrived, admitted ? EffectKind.Admitted : EffectKind.Blocked }));
        Assert.That(d.Phase(7), Is.EqualTo(admitted ? CallPhase.Admitted : CallPhase.QueuedAsleep));
        Assert.That(d.Free, Is.EqualTo(admitted ? free - 1 : free));
    }

    [TestCase("legacy")]
    [TestCase("ffa")]
    public void Non_counting_policies_send_every_caller_to_the_smc(string policy)
    {
        var d = Driver(Policy.Find(policy)!);
        Assert.That(d.Total, Is.Zero);
        for (var c = 0; c < 3; c++) { d.Arrive(c, false, _fx); Assert.That(d.Phase(c), Is.EqualTo(CallPhase.Admitted)); }
        d.Smc(0, _fx); d.Smc(1, _fx);
        _fx.Clear();
        d.Smc(2, _fx);
        Assert.That(_fx.Single().Kind, Is.EqualTo(EffectKind.Refused));
        Assert.That(_fx.Single().Detail, Is.EqualTo(policy == "ffa" ? "BUSY" : "ETHREAD_LIMIT"));
        Assert.That(d.Phase(2), Is.EqualTo(CallPhase.RefusedAsleep));
    }

    [Test]
    public void Refused_caller_is_woken_fifo_and_retries_the_same_smc()
    {
        var d = Driver(Policy.Legacy);
        for (var c = 0; c < 3; c++) d.Arrive(c, false, _fx);
        d.Smc(0, _fx); d.Smc(1, _fx); d.Smc(2, _fx);
        _fx.Clear();
        d.Final(0, _fx);   // returns, leaves, wakes the first not-done entry: 1 is running, so 1 absorbs it
        Assert.That(Kinds(), Is.EqualTo(new[] { EffectKind.Exited, EffectKind.Ended, EffectKind.Absorbed }));
        Assert.That(_fx[^1].Subject, Is.EqualTo(1));
        _fx.Clear();
        d.Final(1, _fx);   // 1 ends: its own wake-up + the absorbed one forwarded; 2 gets the first
        Assert.That(Kinds(), Is.EqualTo(new[] { EffectKind.Exited, EffectKind.Ended, EffectKind.Woken, EffectKind.Forwarded }));
        Assert.That(_fx[2].Subject, Is.EqualTo(2));
        _fx.Clear();
        d.Wake(2, _fx);
        Assert.That(d.Phase(2), Is.EqualTo(CallPhase.WakingRefused));
        d.Requeue(2, _fx);
        Assert.That(d.Phase(2), Is.EqualTo(CallPhase.Admitted), "back to its SMC, no admission test");
        d.Smc(2, _fx);
        Assert.That(d.Phase(2), Is.EqualTo(CallPhase.InSecure));
    }

    // ---- wake-up order ----------------------------------------------------------------------------

    [Test]
    public void Fifo_wakeup_takes_the_first_not_done_entry()
    {
        var d = Driver(Policy.MainlineFifo, threads: 3);
        d.RegisterSystem(0, _fx);
        d.Arrive(0, false, _fx); d.Smc(0, _fx);
        d.Arrive(1, true, _fx); d.Smc(1, _fx);
        d.Arrive(4, true, _fx); d.Smc(4, _fx);
        d.Arrive(2, false, _fx);
        d.Arrive(3, true, _fx);
        _fx.Clear();
        Assert.That(d.CompleteOne(_fx), Is.EqualTo(0), "a running caller is first in the list");
        Assert.That(_fx.Single().Kind, Is.EqualTo(EffectKind.Absorbed));
        d.CompleteOne(_fx); d.CompleteOne(_fx);
        _fx.Clear();
        Assert.That(d.CompleteOne(_fx), Is.EqualTo(2), "then the normal waiter ahead of the system one");
        Assert.That(_fx.Single().Kind, Is.EqualTo(EffectKind.Woken));
    }

    [Test]
    public void System_first_wakeup_skips_running_and_normal_entries()
    {
        var d = Driver(Policy.Mainline, threads: 3);
        d.RegisterSystem(0, _fx);
        d.Arrive(0, false, _fx); d.Smc(0, _fx);
        d.Arrive(1, true, _fx); d.Smc(1, _fx);
        d.Arrive(4, true, _fx); d.Smc(4, _fx);
        d.Arrive(2, false, _fx);
        d.Arrive(3, true, _fx);
        _fx.Clear();
        Assert.That(d.CompleteOne(_fx), Is.EqualTo(1), "first not-done system entry: running system call 1");
        Assert.That(d.CompleteOne(_fx), Is.EqualTo(4));
        Assert.That(d.CompleteOne(_fx), Is.EqualTo(3), "then the system waiter, ahead of normal entries");
        Assert.That(d.CompleteOne(_fx), Is.EqualTo(0), "no system entry left: first not-done entry");
        Assert.That(d.CompleteOne(_fx), Is.EqualTo(2));
        Assert.That(d.CompleteOne(_fx), Is.EqualTo(-1), "everyone done: nobody to wake");
    }

    [Test]
    public void Wakeup_landing_on_a_running_caller_is_forwarded_at_its_end()
    {
        var d = Driver(Policy.Mainline);
        d.Arrive(0, false, _fx); d.Smc(0, _fx);   // A
        d.Arrive(1, false, _fx); d.Smc(1, _fx);   // B
        d.Arrive(2, false, _fx);                   // C blocks
        _fx.Clear();
        d.Final(1, _fx);                           // B ends: the wake-up lands on A
        Assert.That(_fx.Last(), Is.EqualTo(new Effect(EffectKind.Absorbed, 0)));
        Assert.That((d.IsDone(0), d.IsDone(2), d.Free), Is.EqualTo((true, false, 1)));
        Assert.That(d.FindStranded(), Is.EqualTo(2), "C sleeps beside a free slot");
        _fx.Clear();
        d.Final(0, _fx);                           // A ends: wakes C, then forwards the absorbed one
        Assert.That(Kinds(), Is.EqualTo(new[] { EffectKind.Exited, EffectKind.Ended, EffectKind.Woken, EffectKind.Forwarded }));
        Assert.That(_fx[2].Subject, Is.EqualTo(2));
        Assert.That(d.FindStranded(), Is.EqualTo(-1));
    }

    [Test]
    public void Woken_normal_caller_that_cannot_enter_sleeps_again_at_the_tail_without_passing_it_on()
    {
        var d = Driver(Policy.Mainline, threads: 2);
        d.RegisterSystem(0, _fx);
        d.Arrive(1, false, _fx); d.Smc(1, _fx);   // normal holder (free 2 > 1)
        d.Arrive(0, true, _fx); d.Smc(0, _fx);    // system holder (free 1 > 0)
        d.Arrive(2, false, _fx);                   // normal waiter N
        d.Arrive(3, false, _fx);                   // normal waiter M
        _fx.Clear();
        d.Final(0, _fx);                           // free=1; system-first: none waiting → FIFO: 1 running absorbs
        Assert.That(_fx.Last().Kind, Is.EqualTo(EffectKind.Absorbed));
        _fx.Clear();
        d.Final(1, _fx);                           // free=2: wakes N, forwards → wakes M
        Assert.That(_fx.Where(e => e.Kind == EffectKind.Woken).Select(e => e.Subject), Is.EqualTo(new[] { 2, 3 }));
        _fx.Clear();
        d.Wake(2, _fx); d.Requeue(2, _fx); d.Recheck(2, _fx);   // free 2 > 1: admitted
        Assert.That(d.Phase(2), Is.EqualTo(CallPhase.Admitted));
        _fx.Clear();
        d.Wake(3, _fx); d.Requeue(3, _fx); d.Recheck(3, _fx);   // free 1, threshold 1: back to sleep, at the tail
        Assert.That(Kinds(), Is.EqualTo(new[] { EffectKind.Reevaluated, EffectKind.Blocked }));
        Assert.That(d.List.Last(), Is.EqualTo(3));
        Assert.That(d.IsDone(3), Is.False, "its completion is cleared, the wake-up is not passed on");
    }

    [Test]
    public void A_wakeup_landing_between_waking_and_the_move_to_the_tail_is_lost()
    {
        // The kernel wakes in three steps: wait_for_completion returns (completion consumed), then under
        // the lock the entry moves to the tail with reinit_completion, then under the lock again the
        // admission is re-checked. A complete_one in the first gap picks the same, still-listed entry.
        var d = Driver(Policy.Mainline, threads: 2);
        d.Arrive(0, false, _fx); d.Smc(0, _fx);
        d.Arrive(1, false, _fx); d.Smc(1, _fx);
        d.Arrive(2, false, _fx);                   // C asleep, first not-done after the runners
        d.CompleteOne(_fx); d.CompleteOne(_fx);   // the runners absorb two wake-ups
        _fx.Clear();
        d.Final(0, _fx);                           // A ends: wakes C, then forwards its absorbed one: nobody left
        Assert.That(_fx.Where(e => e.Kind == EffectKind.Woken).Select(e => e.Subject), Is.EqualTo(new[] { 2 }));
        d.Wake(2, _fx);
        Assert.That((d.Phase(2), d.IsDone(2)), Is.EqualTo((CallPhase.Waking, false)), "the completion is consumed; the entry is still listed");
        _fx.Clear();
        d.Final(1, _fx);                           // B ends before C takes the lock: its wake-up lands on C again
        Assert.That(_fx.Where(e => e.Kind is EffectKind.Absorbed).Select(e => e.Subject), Has.Member(2));
        _fx.Clear();
        d.Requeue(2, _fx);
        Assert.That(Kinds(), Is.EqualTo(new[] { EffectKind.WakeupLost, EffectKind.Reevaluated }), "reinit_completion erases it");
        d.Recheck(2, _fx);
        Assert.That(d.Phase(2), Is.EqualTo(CallPhase.Admitted));
    }

    [Test]
    public void A_caller_woken_by_the_first_complete_one_may_return_before_the_forward_and_is_completed_again()
    {
        // wait_final holds the lock across both complete_ones, but wait_for_completion returns without
        // it: the caller the first one woke may consume its wake-up before the second runs.
        var d = Driver(Policy.Mainline, threads: 2);
        d.Arrive(0, false, _fx); d.Smc(0, _fx);
        d.Arrive(1, false, _fx); d.Smc(1, _fx);
        d.Arrive(2, false, _fx); d.Arrive(3, false, _fx);   // W and X asleep
        d.Final(1, _fx);                                     // B ends: A (running) absorbs it
        _fx.Clear();
        Assert.That(d.Leave(0, _fx), Is.True, "A absorbed a wake-up: it owes a forward");
        Assert.That((d.Phase(0), d.Forwarding()), Is.EqualTo((CallPhase.Forwarding, 0)));
        Assert.That(d.FindStranded(), Is.EqualTo(-1), "the forward is on its way");
        Assert.That(_fx.Where(e => e.Kind == EffectKind.Woken).Select(e => e.Subject), Is.EqualTo(new[] { 2 }));
        d.Wake(2, _fx);                                      // W returns before the forward
        _fx.Clear();
        d.Forward(0, _fx);
        Assert.That(Kinds(), Is.EqualTo(new[] { EffectKind.Forwarded, EffectKind.Absorbed }));
        Assert.That(_fx[1].Subject, Is.EqualTo(2), "W is first and not done: completed again, not X");
        Assert.That(d.Phase(0), Is.EqualTo(CallPhase.Ended));
        _fx.Clear();
        d.Requeue(2, _fx);
        Assert.That(Kinds()[0], Is.EqualTo(EffectKind.WakeupLost));
        d.Recheck(2, _fx);
        Assert.That(d.FindStranded(), Is.EqualTo(3), "X sleeps beside a free slot");

        // Final() is both halves with nothing between: the forward reaches X.
        var atOnce = Driver(Policy.Mainline, threads: 2);
        atOnce.Arrive(0, false, _fx); atOnce.Smc(0, _fx); atOnce.Arrive(1, false, _fx); atOnce.Smc(1, _fx);
        atOnce.Arrive(2, false, _fx); atOnce.Arrive(3, false, _fx);
        atOnce.Final(1, _fx);
        _fx.Clear();
        atOnce.Final(0, _fx);
        Assert.That(_fx.Where(e => e.Kind == EffectKind.Woken).Select(e => e.Subject), Is.EqualTo(new[] { 2, 3 }));
        Assert.Throws<ModelStepException>(() => atOnce.Forward(0, _fx), "nothing owed any more");
    }

    // ---- system sessions ----------------------------------------------------------------------------

    [TestCase("legacy", 2, false)]
    [TestCase("ffa", 2, false)]
    [TestCase("v9", 1, true)]
    [TestCase("mainline", 2, true)]
    [TestCase("mainline", 1, false)]
    [TestCase("mainline-fifo", 1, false)]
    public void System_session_support(string policy, int threads, bool ok)
    {
        var d = Driver(Policy.Find(policy)!, threads);
        Assert.That(d.RegisterSystem(0, _fx), Is.EqualTo(ok));
        Assert.That(d.SysReqCount, Is.EqualTo(ok ? 1 : 0));
        Assert.That(d.RegisterSystem(0, _fx), Is.EqualTo(ok), "a second call on the same session");
        Assert.That(d.SysReqCount, Is.EqualTo(ok ? 1 : 0), "counted once per session");
    }

    [Test]
    public void Closing_a_system_session_uncounts_it_and_lets_a_waiter_recheck()
    {
        var d = Driver(Policy.Mainline, threads: 2);
        d.RegisterSystem(0, _fx);
        d.Arrive(0, false, _fx); d.Smc(0, _fx);
        d.Arrive(1, false, _fx);                    // free 1, a session registered: blocks
        Assert.That(d.Phase(1), Is.EqualTo(CallPhase.QueuedAsleep));
        _fx.Clear();
        d.UnregisterSystem(0, _fx);
        Assert.That(d.SysReqCount, Is.Zero);
        Assert.That(_fx.Last(), Is.EqualTo(new Effect(EffectKind.Absorbed, 0)), "complete_one runs; here it lands on the runner");
        Assert.That(d.FindStranded(), Is.EqualTo(1), "the waiter could now enter but holds no wake-up");
    }

    // ---- invariants --------------------------------------------------------------------------------

    [Test]
    public void A_policy_that_ignores_the_threshold_breaks_the_invariants_and_is_caught()
    {
        var broken = Policy.Mainline with { Name = "broken", AdmissionOverride = (_, _) => -1 };
        var d = Driver(broken, threads: 2);
        d.RegisterSystem(0, _fx);
        d.Arrive(0, false, _fx); d.Arrive(1, false, _fx);
        _fx.Clear();
        d.Arrive(2, false, _fx);
        var broken3 = _fx.Where(e => e.Kind == EffectKind.InvariantBroken).Select(e => e.Detail).ToList();
        Assert.That(broken3, Has.Some.Contains("free = -1 < 0"));
        Assert.That(broken3, Has.Some.Contains("3 callers admitted, total is 2"));
        Assert.That(broken3, Has.Some.Contains("normal callers admitted while a system session is registered"));
    }

    [Test]
    public void Steps_the_kernel_cannot_take_are_refused()
    {
        var d = Driver(Policy.Mainline);
        d.Arrive(0, false, _fx);
        Assert.Throws<ModelStepException>(() => d.Arrive(0, false, _fx));
        Assert.Throws<ModelStepException>(() => d.Wake(0, _fx), "not asleep");
        Assert.Throws<ModelStepException>(() => d.Exit(0, _fx), "not in the secure world yet");
    }
}
