using Hil.Model.Core;
using Hil.Model.Execution;
using Hil.Model.Exploration;
using Hil.Model.Simulation;

namespace Hil.Model.Tests;

/// <summary>
/// The spec's "known results", each from a scenario file under testsuites/model that anyone can
/// run with `hil model simulate|explore`. Every assertion names an exact outcome.
/// </summary>
public class KnownResultsTests
{
    private static TimelineEvent At(SimulationResult r, double ms, string call, string ev) =>
        r.Events.SingleOrDefault(e => e.TimeUs == (long)(ms * 1000) && e.Subject == call && e.Event == ev)
        ?? throw new AssertionException($"no '{ev}' of {call} at {ms} ms; events of {call}: " +
            string.Join(", ", r.Events.Where(e => e.Subject == call).Select(e => $"{e.TimeUs / 1000.0}:{e.Event}")));

    [Test]
    public void V9_with_one_thread_never_admits_a_normal_call()
    {
        var sc = TestScenarios.Load("v9-one-thread");
        var sim = Simulator.Run(sc);
        Assert.That(sim.Call("app/open-file").EnteredAt, Is.Null);
        Assert.That(sim.Findings.Single().Kind, Is.EqualTo(FindingKind.Deadlock));

        var ex = Explorer.Run(sc);
        Assert.That(ex.Stats.CompletedTerminalStates, Is.Zero, "no interleaving lets it in");
        Assert.That(ex.Stats.MaxInSecure, Is.Zero);
        Assert.That(ex.Findings.Single(f => f.Kind == FindingKind.Deadlock).Path!, Has.Count.EqualTo(1));

        // The same scenario under mainline: one thread, no system session: admitted.
        var ml = Simulator.Run(sc.WithPolicy(Policy.Mainline));
        Assert.That(ml.Call("app/open-file").EndedAt, Is.EqualTo(10_000));
    }

    [Test]
    public void Etienne_example_strands_the_system_waiter_under_fifo_wakeup()
    {
        var r = Simulator.Run(TestScenarios.Load("etienne-v10-review"));
        Assert.That(r.Scenario.Policy, Is.EqualTo(Policy.MainlineFifo));
        // When the running system call ends at 150 ms: N is woken, cannot enter, sleeps again...
        At(r, 150, "SA/x10", "end");
        At(r, 150, "N/call", "woken");
        var reblock = At(r, 150, "N/call", "blocked");
        Assert.That(reblock.Free, Is.EqualTo(1), "one slot free, kept for system callers");
        // ... and S2 stays asleep beside that free slot until a runner ends at 1000 ms.
        Assert.That(r.Events.Any(e => e.Subject == "S2/call" && e.Event == "woken" && e.TimeUs < 1_000_000), Is.False);
        Assert.That(r.Call("S2/call").EnteredAt, Is.EqualTo(1_000_000));
        var stranded = r.Findings.Single(f => f.Kind == FindingKind.Stranded);
        Assert.That((stranded.Subject, stranded.AtUs, stranded.UntilUs), Is.EqualTo(("S2/call", 150_000L, (long?)1_000_000L)));
    }

    [Test]
    public void Etienne_example_admits_the_system_waiter_under_mainline()
    {
        var r = Simulator.Run(TestScenarios.Load("etienne-v10-review", Policy.Mainline));
        At(r, 150, "S2/call", "woken");
        At(r, 150, "S2/call", "admitted");
        Assert.That(r.Call("S2/call").EnteredAt, Is.EqualTo(150_000));
        Assert.That(r.Events.Any(e => e.Subject == "N/call" && e.Event == "woken" && e.TimeUs == 150_000), Is.False);
        Assert.That(r.Findings.Where(f => f.Subject == "S2/call"), Is.Empty);
    }

    [Test]
    public void Absorbed_wakeup_may_be_lost_only_when_the_woken_caller_returns_before_the_forward()
    {
        // Three clients: the only second complete_one is the forward of the absorbed wake-up, so
        // a lost wake-up needs C to return from wait_for_completion between A's two complete_ones.
        var sc = TestScenarios.Load("absorbed-wakeup");
        Assert.That(Explorer.Run(sc).Stats.WakeupLossReachable, Is.True);
        Assert.That(Simulator.Run(sc).Events.Any(e => e.Event == "wakeup-lost"), Is.False, "the timed run forwards at once");

        // Walk it: A and B running, C asleep; B ends (A absorbs), A ends: under A's lock only the
        // forward and lockless steps may run.
        var run = new ScenarioRun(sc);
        var fx = new List<Effect>();
        var steps = new List<Step>();
        foreach (var client in new[] { 0, 1, 2 }) run.Apply(new Step(StepKind.Arrive, client), fx);
        run.Apply(new Step(StepKind.End, 1), fx);
        run.Apply(new Step(StepKind.End, 0), fx);
        run.EnabledSteps(steps);
        Assert.That(steps, Is.EquivalentTo(new[] { new Step(StepKind.Forward, 0), new Step(StepKind.Wake, 2) }));
        run.Apply(new Step(StepKind.Wake, 2), fx);
        run.EnabledSteps(steps);
        Assert.That(steps, Is.EqualTo(new[] { new Step(StepKind.Forward, 0) }), "C's move to the tail needs the lock A holds");
        fx.Clear();
        run.Apply(new Step(StepKind.Forward, 0), fx);
        Assert.That(fx.Select(e => (e.Kind, e.Subject)), Is.EqualTo(new[] { (EffectKind.Forwarded, 0), (EffectKind.Absorbed, 2) }));
        fx.Clear();
        run.Apply(new Step(StepKind.Requeue, 2), fx);
        Assert.That(fx[0].Kind, Is.EqualTo(EffectKind.WakeupLost));
    }

    [Test]
    public void Scmi_chain_deadlocks_under_legacy()
    {
        var sc = TestScenarios.Load("scmi-deadlock");
        var sim = Simulator.Run(sc);
        var dl = sim.Findings.Single(f => f.Kind == FindingKind.Deadlock);
        Assert.That(dl.Subject, Is.EqualTo("storage1/write,storage2/write,scmi/clk-enable"));
        Assert.That(sim.Events.Single(e => e.Event == "ethread-limit").Subject, Is.EqualTo("scmi/clk-enable"));
        Assert.That(sim.Events.Any(e => e.Event == "system-refused"), Is.True, "legacy has no system sessions");

        var ex = Explorer.Run(sc);
        Assert.That(ex.FindingStates[FindingKind.Deadlock], Is.GreaterThan(0));
        Assert.That(ex.Findings.First(f => f.Kind == FindingKind.Deadlock).Path!, Has.Count.EqualTo(6));
    }

    [Test]
    public void Scmi_chain_never_deadlocks_under_mainline_with_one_scmi_user()
    {
        var sc = TestScenarios.Load("scmi-deadlock", Policy.Mainline);
        var ex = Explorer.Run(sc);
        Assert.That(ex.Complete, Is.True);
        Assert.That(ex.Findings.Where(f => f.Kind == FindingKind.Deadlock), Is.Empty);
        Assert.That(ex.Stats.TerminalStates, Is.EqualTo(ex.Stats.CompletedTerminalStates), "every interleaving finishes");
        var sim = Simulator.Run(sc);
        Assert.That(sim.Call("scmi/clk-enable").AdmissionLatency, Is.Zero, "the kept slot admits SCMI at once");
        Assert.That(sim.Findings, Is.Empty);
    }

    [Test]
    public void Second_system_user_needing_scmi_deadlocks_under_mainline()
    {
        var sc = TestScenarios.Load("jens-second-system-user");
        var sim = Simulator.Run(sc);
        Assert.That(sim.Findings.Single(f => f.Kind == FindingKind.Deadlock).Summary, Does.Contain("scmi/clk-enable (blocked)"));
        var ex = Explorer.Run(sc);
        var path = ex.Findings.Single(f => f.Kind == FindingKind.Deadlock).Path!;
        Assert.That(path.Select(p => p.Step), Is.EqualTo(new[]
        {
            "storage/write arrives (wait_init): storage/write admitted, storage/write enters the secure world",
            "rpmb/read-counter arrives (wait_init): rpmb/read-counter admitted, rpmb/read-counter enters the secure world",
            "scmi/clk-enable arrives (wait_init): scmi/clk-enable blocks",
        }));
    }

    [Test]
    public void Mainline_keeps_normal_callers_to_total_minus_one_while_a_system_session_exists()
    {
        var ex = Explorer.Run(TestScenarios.Load("total-minus-one"));
        Assert.That(ex.Stats.MaxNormalInSecureWhileSystemRegistered, Is.EqualTo(3), "total 4 - 1, reached");
        Assert.That(ex.Findings.Where(f => f.Kind == FindingKind.InvariantBroken), Is.Empty);

        // Without the system session every thread may go to normal callers.
        var noSys = TestScenarios.Inline("""
            policy: mainline
            threads: 4
            clients:
              - { name: u1, calls: [{ hold: 100 }] }
              - { name: u2, calls: [{ hold: 100 }] }
              - { name: u3, calls: [{ hold: 100 }] }
              - { name: u4, calls: [{ hold: 100 }] }
              - { name: u5, calls: [{ hold: 100 }] }
            """);
        Assert.That(Explorer.Run(noSys).Stats.MaxNormalInSecure, Is.EqualTo(4));
    }

    [Test]
    public void Wakeup_absorbed_by_a_running_caller_delays_the_waiter_until_it_ends()
    {
        var r = Simulator.Run(TestScenarios.Load("absorbed-wakeup"));
        At(r, 1200, "B/c1", "end");
        At(r, 1200, "A/c1", "absorbed");
        At(r, 3000, "A/c1", "forward");
        At(r, 3000, "C/c1", "woken");
        Assert.That(r.Call("C/c1").EnteredAt, Is.EqualTo(3_000_000));
        Assert.That(r.Call("C/c1").EndedAt, Is.EqualTo(3_100_000), "C returns 100 ms after A, as measured on the board");
        var s = r.Findings.Single(f => f.Kind == FindingKind.Stranded);
        Assert.That((s.Subject, s.AtUs, s.UntilUs), Is.EqualTo(("C/c1", 1_200_000L, (long?)3_000_000L)));

        // Control from the same measurement: A and C only, C is never blocked.
        var control = Simulator.Run(TestScenarios.Inline("""
            policy: mainline
            threads: 2
            clients:
              - { name: A, calls: [{ at: 0, hold: 3000 }] }
              - { name: C, calls: [{ at: 400, hold: 100 }] }
            """));
        Assert.That(control.Call("C/c1").TimesBlocked, Is.Zero);
        Assert.That(control.Call("C/c1").EndedAt, Is.EqualTo(500_000));
    }

    [TestCase("total-minus-one")]
    [TestCase("scmi-deadlock")]
    [TestCase("absorbed-wakeup")]
    public void Symmetry_reduction_keeps_every_verdict_with_fewer_states(string name)
    {
        var sc = TestScenarios.Load(name);
        var full = Explorer.Run(sc, new ExploreOptions(Symmetry: false));
        var reduced = Explorer.Run(sc, new ExploreOptions(Symmetry: true));
        Assert.That(reduced.States, Is.LessThanOrEqualTo(full.States));
        Assert.That(reduced.Stats with { TerminalStates = 0, CompletedTerminalStates = 0 }, Is.EqualTo(full.Stats with { TerminalStates = 0, CompletedTerminalStates = 0 }));
        Assert.That(reduced.FindingStates.Keys, Is.EquivalentTo(full.FindingStates.Keys));
        Assert.That(reduced.Findings.Select(f => f.Kind).Distinct(), Is.EquivalentTo(full.Findings.Select(f => f.Kind).Distinct()));
        Assert.That(reduced.FinalOutcomes.Count, Is.LessThanOrEqualTo(full.FinalOutcomes.Count));
        if (name == "total-minus-one") Assert.That(reduced.States, Is.LessThan(full.States / 10), "five identical clients");
    }

    [Test]
    public void Explorer_benchmark_scenario_has_a_stable_state_count()
    {
        // Guards the benchmark's meaning: the README's figures are for this exact state space.
        var ex = Explorer.Run(TestScenarios.Load("bench/explore-4x6x2"), new ExploreOptions(MaxStates: 100));
        Assert.That(ex.Complete, Is.False, "a 100-state cap must be reported as incomplete");
        Assert.That(ex.HasFindings, Is.True, "an incomplete exploration is never a clean result");
    }
}

public class StrandedOnlyWithoutAWakeupOnItsWayTests
{
    [Test]
    public void A_caller_refused_while_the_holder_returns_is_not_stranded_under_any_policy()
    {
        // Issue 11: threads 1, A at 0 holding 10, B at 1 holding 10. Under legacy and FF-A, once A's
        // SMC returns its thread is free while B sleeps — but A's wait_final is still to come and
        // will wake B: a wake-up on its way, not a stranded caller.
        foreach (var policy in Hil.Model.Core.Policy.All)
        {
            var sc = Hil.Model.Scenarios.ScenarioParser.Parse($"""
                policy: {policy.Name}
                threads: 1
                clients:
                  - {"{"} name: A, calls: [{"{"} at: 0, hold: 10 {"}"}] {"}"}
                  - {"{"} name: B, calls: [{"{"} at: 1, hold: 10 {"}"}] {"}"}
                """, "issue-11.yaml");
            var ex = Hil.Model.Exploration.Explorer.Run(sc);
            Assert.That(ex.Findings.Where(f => f.Kind == Hil.Model.Execution.FindingKind.Stranded).Select(f => f.Summary), Is.Empty, policy.Name);
            var sim = Hil.Model.Simulation.Simulator.Run(sc);
            Assert.That(sim.Findings.Where(f => f.Kind == Hil.Model.Execution.FindingKind.Stranded).Select(f => f.Summary), Is.Empty, policy.Name);
        }
    }
}
