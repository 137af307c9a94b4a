using System.Text;
using CsCheck;
using Hil.Model.Conformance;
using Hil.Model.Core;
using Hil.Model.Execution;
using Hil.Model.Exploration;
using Hil.Model.Scenarios;
using Hil.Model.Simulation;

namespace Hil.Model.Tests;

/// <summary>
/// Random scenarios (every policy, 1-3 threads, up to 4 clients of up to 2 calls, system
/// sessions, closes and cross-client dependencies): the simulator, the explorer and the trace
/// checker must agree with each other.
/// </summary>
public class PropertyTests
{
    private sealed record CallGen(int At, int Hold, int? NeedClient);
    private sealed record ClientGen(bool System, bool Close, CallGen[] Calls);
    private sealed record ScenarioGen(int Policy, int Threads, ClientGen[] Clients);

    private static readonly Gen<ScenarioGen> Scenarios =
        Gen.Select(
            Gen.Int[0, Policy.All.Count - 1],
            Gen.Int[1, 3],
            Gen.Select(
                Gen.Bool,
                Gen.Int[0, 9],
                Gen.Select(Gen.Int[0, 20], Gen.Int[0, 15], Gen.Int[0, 9]).Select((a, h, n) => new CallGen(a, h, n < 2 ? n : null)).Array[1, 2])
            .Select((sys, closeRoll, calls) => new ClientGen(sys, closeRoll == 0, calls)).Array[1, 4])
        .Select((p, t, c) => new ScenarioGen(p, t, c));

    private static Scenario Build(ScenarioGen g) => ScenarioParser.Parse(Yaml(g), "random.yaml");

    private static string Yaml(ScenarioGen g)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"policy: {Policy.All[g.Policy].Name}").AppendLine($"threads: {g.Threads}").AppendLine("clients:");
        for (var c = 0; c < g.Clients.Length; c++)
        {
            var cl = g.Clients[c];
            sb.AppendLine($"  - name: k{c}");
            sb.AppendLine($"    sessions: [{{ name: s, system: {(cl.System ? "true" : "false")} }}]");
            sb.AppendLine("    calls:");
            for (var i = 0; i < cl.Calls.Length; i++)
            {
                var call = cl.Calls[i];
                // A dependency points at the first call of another client (which may form a cycle: a deadlock is a fine outcome).
                var need = call.NeedClient is { } n && g.Clients.Length > 1 ? $", needs: [k{(c + 1 + n) % g.Clients.Length}/c1]" : "";
                if ((c + 1 + (call.NeedClient ?? 0)) % g.Clients.Length == c) need = "";
                sb.AppendLine($"      - {{ at: {call.At}, hold: {call.Hold}{need} }}");
            }
            if (cl.Close) sb.AppendLine("      - { op: close, hold: 1 }");
        }
        return sb.ToString();
    }

    [Test]
    public void Simulate_never_breaks_an_invariant_the_explorer_checks()
    {
        Scenarios.Sample(g =>
        {
            var sc = Build(g);
            var sim = Simulator.Run(sc);
            var ex = Explorer.Run(sc);
            return ex.Complete
                && sim.Findings.All(f => f.Kind != FindingKind.InvariantBroken)
                && ex.Findings.All(f => f.Kind != FindingKind.InvariantBroken);
        }, iter: 300, print: DescribeForFailure);
    }

    [Test]
    public void Explore_finds_every_final_state_that_simulate_reaches()
    {
        Scenarios.Sample(g =>
        {
            var sc = Build(g);
            var sim = Simulator.Run(sc);
            var ex = Explorer.Run(sc);
            return ex.FinalOutcomes.Contains(Explorer.CanonicalOutcome(sim.Final));
        }, iter: 300, print: DescribeForFailure);
    }

    [Test]
    public void Every_simulated_run_yields_a_trace_that_conforms()
    {
        Scenarios.Sample(g =>
        {
            var sc = Build(g);
            var r = ConformanceChecker.CheckText(ConformanceTests.TraceOf(sc));
            return r.Conforms;
        }, iter: 300, print: g =>
        {
            var r = ConformanceChecker.CheckText(ConformanceTests.TraceOf(Build(g)));
            return DescribeForFailure(g) + "\n" + string.Join("\n", ConformanceRendering.Text(r));
        });
    }

    [Test]
    public void A_trace_with_one_line_removed_is_caught_or_still_explainable_never_a_crash()
    {
        // Dropping a line must give a clean verdict (conforms or a divergence), never an exception.
        Scenarios.Sample(g =>
        {
            var lines = ConformanceTests.TraceOf(Build(g)).Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
            if (lines.Count < 3) return true;
            for (var drop = 1; drop < lines.Count; drop++)
            {
                var mutated = string.Join("\n", lines.Where((_, i) => i != drop)) + "\n";
                _ = ConformanceChecker.CheckText(mutated);
            }
            return true;
        }, iter: 60, print: DescribeForFailure);
    }

    private static string DescribeForFailure(ScenarioGen g)
    {
        var sim = Simulator.Run(Build(g));
        return Yaml(g) + "\n" + string.Join("\n", Rendering.SimulationText(sim).Take(60));
    }

    // Interchangeable clients (same shape, no dependencies), so the explorer's symmetry reduction is at work.
    private static readonly Gen<ScenarioGen> SymmetricScenarios =
        Gen.Select(
            Gen.Int[0, Policy.All.Count - 1],
            Gen.Int[1, 3],
            Gen.Select(
                Gen.Bool,
                Gen.Select(Gen.Int[0, 20], Gen.Int[0, 15]).Select((a, h) => new CallGen(a, h, null)).Array[1, 2],
                Gen.Int[2, 3])
            .Select((sys, calls, copies) => Enumerable.Repeat(new ClientGen(sys, false, calls), copies).ToArray()).Array[1, 2])
        .Select((p, t, groups) => new ScenarioGen(p, t, groups.SelectMany(x => x).Take(4).ToArray()));

    /// <summary>
    /// Replays a finding's printed path with the step API from the start: each step must be one the
    /// state before it allows, each printed state the one reached, and the end the finding's state
    /// (the stranded caller stranded there, nothing able to move for a deadlock). Null when it holds.
    /// </summary>
    internal static string? ReplayProblem(Scenario sc, Finding f)
    {
        if (f.Path is null) return "no path";
        var run = new ScenarioRun(sc);
        var fx = new List<Effect>();
        run.RegisterInitialSystemSessions(fx);
        var steps = new List<Step>();
        for (var i = 0; i < f.Path.Count; i++)
        {
            var p = f.Path[i];
            run.EnabledSteps(steps);
            if (p.Taken is not { } step || !steps.Contains(step)) return $"step {i + 1} ({p.Step}) is not possible in the state before it";
            run.Apply(step, fx);
            if (run.DescribeState() != p.StateAfter) return $"step {i + 1} ({p.Step}) reaches {run.DescribeState()}, printed {p.StateAfter}";
        }
        if (run.DescribeState() != f.State) return $"the path ends in {run.DescribeState()}, the finding says {f.State}";
        switch (f.Kind)
        {
            case FindingKind.Stranded:
                var s = run.Driver.FindStranded();
                if (s < 0 || sc.CallName(s) != f.Subject) return $"at the end of the path {f.Subject} is not stranded";
                break;
            case FindingKind.Deadlock:
                run.EnabledSteps(steps);
                if (steps.Count > 0 || run.AllEnded) return "at the end of the path something can still move";
                break;
        }
        return null;
    }

    [Test]
    public void Every_finding_path_replays_step_by_step_to_its_printed_states_with_symmetry_reduction()
    {
        var withFindings = 0;
        var sample = Gen.OneOf(Scenarios, SymmetricScenarios);
        sample.Sample(g =>
        {
            var sc = Build(g);
            var ex = Explorer.Run(sc, new ExploreOptions(MaxStates: 100_000, Symmetry: true));
            if (ex.Findings.Count > 0) withFindings++;
            return ex.Findings.All(f => ReplayProblem(sc, f) is null);
        }, iter: 200, print: g =>
        {
            var sc = Build(g);
            var ex = Explorer.Run(sc, new ExploreOptions(MaxStates: 100_000, Symmetry: true));
            return DescribeForFailure(g) + "\n" + string.Join("\n", ex.Findings.Select(f => $"{f.Summary}: {ReplayProblem(sc, f)}"));
        });
        TestContext.Out.WriteLine($"{withFindings} of the sampled scenarios had findings");
        Assert.That(withFindings, Is.GreaterThan(0), "the sample must contain scenarios with findings, or the test proves nothing");
    }

    [Test]
    public void A_stranded_finding_is_a_state_where_no_step_ever_wakes_the_caller_before_something_else_moves()
    {
        // Soundness of "no wake-up on its way": from the reported state, taking only steps that do
        // not end or exit a call (nothing that would run complete_one), the caller is never woken.
        Gen.OneOf(Scenarios, SymmetricScenarios).Sample(g =>
        {
            var sc = Build(g);
            var ex = Explorer.Run(sc, new ExploreOptions(MaxStates: 100_000));
            foreach (var f in ex.Findings.Where(f => f.Kind == FindingKind.Stranded))
            {
                var run = new ScenarioRun(sc);
                var fx = new List<Effect>();
                run.RegisterInitialSystemSessions(fx);
                foreach (var p in f.Path!) run.Apply(p.Taken!.Value, fx);
                var stranded = run.Driver.FindStranded();
                if (stranded < 0) return false;
                // Every step possible now except ending a call: none of them may hand the caller a wake-up.
                var steps = new List<Step>();
                run.EnabledSteps(steps);
                foreach (var step in steps.Where(s => s.Kind is not (StepKind.End or StepKind.Exit or StepKind.Forward)))
                {
                    var next = run.Clone();
                    fx.Clear();
                    next.Apply(step, fx);
                    if (fx.Any(e => e.Kind == EffectKind.Woken && e.Subject == stranded)) return false;
                }
                // And a call back from the secure world would not wake it at its wait_final.
                foreach (var step in steps.Where(s => s.Kind == StepKind.End && run.Driver.Phase(s.Subject) == CallPhase.Exited))
                {
                    var next = run.Clone();
                    fx.Clear();
                    next.Apply(step, fx);
                    if (next.Driver.Forwarding() >= 0) next.Apply(new Step(StepKind.Forward, next.Driver.Forwarding()), fx);
                    if (fx.Any(e => e.Kind == EffectKind.Woken && e.Subject == stranded)) return false;
                }
            }
            return true;
        }, iter: 200, print: DescribeForFailure);
    }
}
