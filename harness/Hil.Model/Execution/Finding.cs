using Hil.Model.Core;
using Hil.Model.Scenarios;

namespace Hil.Model.Execution;

public enum FindingKind
{
    /// <summary>Calls unfinished and nothing can move.</summary>
    Deadlock,
    /// <summary>A caller asleep although it could be admitted, with no wake-up to be delivered.</summary>
    Stranded,
    /// <summary>free &lt; 0, more admitted than threads, or the total-1 bound broken.</summary>
    InvariantBroken,
}

/// <summary>One step of a path to a finding, with the state after it; <paramref name="Taken"/> is the step itself (to replay the path).</summary>
public sealed record PathStep(string Step, string StateAfter, Hil.Model.Execution.Step? Taken = null);

/// <summary>
/// Something the model says is wrong with a scenario. Simulate fills the times; explore fills the
/// shortest path from the start (each step with the driver state after it).
/// </summary>
public sealed record Finding(FindingKind Kind, string Summary, string State, long? AtUs = null, long? UntilUs = null,
    IReadOnlyList<PathStep>? Path = null, string? Subject = null)
{
    public string KindLabel => Kind switch
    {
        FindingKind.Deadlock => "deadlock",
        FindingKind.Stranded => "stranded",
        _ => "invariant",
    };

    internal static Finding Deadlock(Scenario sc, IReadOnlyList<int> stuck, ScenarioRun run, long? at)
    {
        var who = stuck.Count == 0 ? "clients cannot start their next step"
            : string.Join(", ", stuck.Select(c => $"{sc.CallName(c)} ({run.Driver.Phase(c).Label()}{(NeedsPending(sc, run, c) is { } n ? $", needs {n}" : "")})"));
        return new Finding(FindingKind.Deadlock, $"deadlock: nothing can move, unfinished: {who}", run.DescribeState(), at,
            Subject: string.Join(",", stuck.Select(sc.CallName)));
    }

    private static string? NeedsPending(Scenario sc, ScenarioRun run, int call)
    {
        var pending = sc.Calls[call].Needs.Where(n => run.Driver.Phase(n) != CallPhase.Ended).Select(sc.CallName).ToList();
        return pending.Count == 0 ? null : string.Join(", ", pending);
    }

    internal static Finding Stranded(Scenario sc, int call, long? since, long? until, string state) =>
        new(FindingKind.Stranded,
            $"stranded: {sc.CallName(call)} asleep with a slot it could take and no wake-up on its way" +
            (since, until) switch
            {
                ({ } s, { } u) => $" ({Ms(s)}–{Ms(u)} ms)",
                ({ } s, null) => $" (from {Ms(s)} ms, never woken)",
                _ => "",
            },
            state, since, until, Subject: sc.CallName(call));

    internal static Finding Invariant(Scenario sc, int call, string what, long? at, string state) =>
        new(FindingKind.InvariantBroken, $"invariant broken at admission of {sc.CallName(call)}: {what}", state, at, Subject: sc.CallName(call));

    internal static string Ms(long us) => (us / 1000.0).ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);
}
