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
}
