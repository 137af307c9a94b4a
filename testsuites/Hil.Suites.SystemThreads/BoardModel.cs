using Hil.Boards.Failures;
using Hil.Model.Core;
using Hil.Model.Exploration;
using Hil.Model.Scenarios;
using Hil.Model.Simulation;
using Hil.Suites.Common;

namespace Hil.Suites.SystemThreads;

/// <summary>
/// The reference model set up with a board's facts (its kernel's policy, OP-TEE's thread count).
/// Every expected outcome of the suite comes from here, never from a per-board constant.
/// </summary>
public sealed record BoardModel(Policy Policy, int Threads)
{
    public static BoardModel From(BoardFacts facts) =>
        new(Policy.Find(facts.KernelPolicy) ?? throw new TestErrorException(
                $"{facts.BoardFile}: facts.kernel_policy '{facts.KernelPolicy}' is not a model policy ({Policy.Names})"),
            facts.Threads);

    /// <summary>What the driver counts (0: it does not count).</summary>
    public int DriverTotal => Policy.DriverTotalFor(Threads);

    /// <summary>Whether tee_client_system_session() succeeds on this board.</summary>
    public bool SystemSessionsAllowed => Policy.SystemSessionAllowed(DriverTotal);

    public ScenarioBuilder Scenario(string name) => new(name, Policy, Threads);

    public SimulationResult Simulate(Scenario scenario) => Simulator.Run(scenario);

    public ExplorationResult Explore(Scenario scenario) => Explorer.Run(scenario);

    public override string ToString() => $"{Policy.Name}, {Threads} secure threads, driver counts {DriverTotal}";
}
