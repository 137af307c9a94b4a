using Hil.Boards.Failures;
using Hil.Model.Core;
using Hil.Model.Exploration;
using Hil.Model.Scenarios;
using Hil.Model.Simulation;
using Hil.Suites.Common;

namespace Hil.Suites.SystemThreads;

/// <summary>
/// The reference model set up with a board's facts as measured on this boot (the loaded driver's
/// policy, the firmware's thread count). Every expected outcome of the suite comes from here, never
/// from a per-board constant or the board file (whose expectations only have to agree).
/// </summary>
public sealed record BoardModel(Policy Policy, int Threads)
{
    public static BoardModel From(BoardFacts facts)
    {
        var name = facts.RequirePolicy();
        var policy = Policy.Find(name) ?? throw new TestErrorException($"board {facts.Board}: the measured policy '{name}' is not a model policy ({Policy.Names})");
        return new BoardModel(policy, facts.RequireThreads());
    }

    /// <summary>What the driver counts (0: it does not count).</summary>
    public int DriverTotal => Policy.DriverTotalFor(Threads);

    /// <summary>Whether tee_client_system_session() succeeds on this board.</summary>
    public bool SystemSessionsAllowed => Policy.SystemSessionAllowed(DriverTotal);

    public ScenarioBuilder Scenario(string name) => new(name, Policy, Threads);

    public SimulationResult Simulate(Scenario scenario) => Simulator.Run(scenario);

    public ExplorationResult Explore(Scenario scenario) => Explorer.Run(scenario);

    public override string ToString() => $"{Policy.Name}, {Threads} secure threads, driver counts {DriverTotal}";
}
