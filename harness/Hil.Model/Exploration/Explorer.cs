using System.Diagnostics;
using Hil.Model.Core;
using Hil.Model.Execution;
using Hil.Model.Scenarios;

namespace Hil.Model.Exploration;

/// <param name="Symmetry">Keep one state of each set that differs only by swapping interchangeable clients (same results, far fewer states).</param>
/// <param name="MaxMemoryMiB">Stop (incomplete) once the kept states would take more than this: the state budget alone does not bound memory, since a state's key grows with the scenario.</param>
public sealed record ExploreOptions(long MaxStates = 20_000_000, bool Symmetry = true, long MaxMemoryMiB = 2048);

/// <summary>Figures over every reachable state.</summary>
public sealed record ExploreStats(
    int MaxInSecure,
    int MaxNormalInSecure,
    int MaxSystemInSecure,
    /// <summary>Most normal callers in the secure world at once while a system session was registered (-1: never registered).</summary>
    int MaxNormalInSecureWhileSystemRegistered,
    long TerminalStates,
    long CompletedTerminalStates,
    /// <summary>Some interleaving erases a wake-up (reinit_completion after the caller woke): that caller's waiters may sleep beside a free slot for a while.</summary>
    bool WakeupLossReachable = false);

public sealed record ExplorationResult(
    Scenario Scenario,
    long States,
    long Transitions,
    TimeSpan Elapsed,
    bool Complete,
    IReadOnlyList<Finding> Findings,
    IReadOnlyDictionary<FindingKind, long> FindingStates,
    IReadOnlySet<string> FinalOutcomes,
    ExploreStats Stats,
    string? IncompleteBecause = null)
{
    public bool HasFindings => Findings.Count > 0 || !Complete;
    public double StatesPerSecond => States / Math.Max(Elapsed.TotalSeconds, 1e-9);
}

/// <summary>
/// Untimed exploration: every interleaving of the scenario's steps (arrivals in any order, a
/// held call may end at any point unless a dependency stops it, wake-ups processed whenever the
/// woken task runs), breadth first with state deduplication, so the path kept for each finding is
/// a shortest one.
/// </summary>
public static class Explorer
{
    public const int MaxCalls = 120;

    public static ExplorationResult Run(Scenario scenario, ExploreOptions? options = null)
    {
        options ??= new ExploreOptions();
        if (scenario.Calls.Count > MaxCalls)
            throw new ArgumentException($"explore handles at most {MaxCalls} calls; the scenario has {scenario.Calls.Count} (use simulate)");
        var sw = Stopwatch.StartNew();

        var fx = new List<Effect>();
        var start = new ScenarioRun(scenario);
        start.RegisterInitialSystemSessions(fx);
        var symmetry = options.Symmetry ? new ClientSymmetry(scenario) : null;
        if (symmetry is { Any: true }) start.Canonicalize(symmetry);

        // Only keys are kept: a state is restored from its key when its turn comes, and a
        // successor is built in a scratch copy, so memory is one small byte array per state.
        var visited = new Dictionary<byte[], int>(ByteKeyComparer.Instance);
        var lookup = visited.GetAlternateLookup<ReadOnlySpan<byte>>();
        var startKey = start.Key();
        visited[startKey] = 0;
        var keys = new List<byte[]> { startKey };
        var parent = new List<int> { -1 };
        var via = new List<int> { 0 };

        var findings = new Dictionary<(FindingKind, string), (int Index, int ExtraStep, Finding Template)>();
        var findingStates = new Dictionary<FindingKind, long>();
        var outcomes = new HashSet<string>();
        var steps = new List<Step>();
        long transitions = 0, terminal = 0, completed = 0;
        var lossReachable = false;
        int maxIn = 0, maxNormal = 0, maxSys = 0, maxNormalWhileSys = -1;
        var complete = true;
        string? incompleteBecause = null;
        // What one kept state costs besides its key: the key array's header, the dictionary entry,
        // and the three per-state lists (measured order of magnitude, not exact: it is a budget).
        const long PerStateOverhead = 24 + 24 + 8 + 4 + 4;
        var memoryBudget = options.MaxMemoryMiB * 1024L * 1024L;
        var kept = startKey.Length + PerStateOverhead;
        var run = start.Clone();
        var next = start.Clone();
        Span<byte> keyBuf = stackalloc byte[start.KeyCapacity];

        Note(start, 0, -1, fx);
        for (var index = 0; index < keys.Count; index++)   // keys grows as states are found: breadth first
        {
            run.LoadKey(keys[index]);
            var (n, s) = run.Driver.InSecureByClass();
            maxIn = Math.Max(maxIn, n + s); maxNormal = Math.Max(maxNormal, n); maxSys = Math.Max(maxSys, s);
            if (run.Driver.SysReqCount > 0) maxNormalWhileSys = Math.Max(maxNormalWhileSys, n);

            var stranded = run.Driver.FindStranded();
            if (stranded >= 0)
                Record(FindingKind.Stranded, scenario.CallName(stranded), index,
                    Finding.Stranded(scenario, stranded, null, null, run.DescribeState()));

            run.EnabledSteps(steps);
            if (steps.Count == 0)
            {
                terminal++;
                outcomes.Add(run.Outcome());
                if (run.AllEnded) completed++;
                else
                {
                    var stuck = Enumerable.Range(0, scenario.Calls.Count).Where(c => run.Driver.Phase(c) != CallPhase.Ended).ToList();
                    var f = Finding.Deadlock(scenario, stuck, run, null);
                    Record(FindingKind.Deadlock, f.Subject ?? "", index, f);
                }
                continue;
            }

            foreach (var step in steps)
            {
                next.CopyFrom(run);
                fx.Clear();
                next.Apply(step, fx);
                transitions++;
                if (fx.Count > 0) Note(next, index, step.Encode(), fx);   // every transition, even into a known state
                var len = next.WriteKey(keyBuf, symmetry);
                var key = keyBuf[..len];
                if (lookup.ContainsKey(key)) continue;
                if (visited.Count >= options.MaxStates)
                {
                    complete = false;
                    incompleteBecause ??= $"state limit reached ({options.MaxStates:N0} states)";
                    continue;
                }
                if (kept + len + PerStateOverhead > memoryBudget)
                {
                    complete = false;
                    incompleteBecause ??= $"memory budget reached ({options.MaxMemoryMiB:N0} MiB of states, {visited.Count:N0} states)";
                    continue;
                }
                kept += len + PerStateOverhead;
                var stored = key.ToArray();
                visited[stored] = keys.Count;
                keys.Add(stored);
                parent.Add(index);
                via.Add(step.Encode());
            }
        }

        var result = findings.Values
            .OrderBy(f => f.Template.Kind).ThenBy(f => f.Index)
            .Select(f =>
            {
                var (path, end) = PathTo(scenario, f.Index, f.ExtraStep, parent, via, symmetry);
                return AtEndOfPath(scenario, f.Template, path, end);
            })
            .ToList();
        return new ExplorationResult(scenario, visited.Count, transitions, sw.Elapsed, complete, result, findingStates, outcomes,
            new ExploreStats(maxIn, maxNormal, maxSys, maxNormalWhileSys, terminal, completed, lossReachable), incompleteBecause);

        // An invariant breaks on a transition: kept as the path to its source state plus that step.
        void Note(ScenarioRun r, int sourceIdx, int stepCode, List<Effect> effects)
        {
            foreach (var e in effects)
                if (e.Kind == EffectKind.WakeupLost) lossReachable = true;
                else if (e.Kind == EffectKind.InvariantBroken)
                    Record(FindingKind.InvariantBroken, e.Detail ?? "", sourceIdx, Finding.Invariant(scenario, e.Subject, e.Detail ?? "", null, r.DescribeState()), stepCode);
        }

        void Record(FindingKind kind, string subject, int idx, Finding f, int extraStep = -1)
        {
            findingStates[kind] = findingStates.GetValueOrDefault(kind) + 1;
            // BFS: the first state met for a (kind, subject) has a shortest path.
            findings.TryAdd((kind, subject), (idx, extraStep, f));
        }
    }

    /// <summary>A final state as the explorer's outcomes name it (interchangeable clients in canonical order).</summary>
    public static string CanonicalOutcome(ScenarioRun run, ExploreOptions? options = null)
    {
        if (!(options ?? new ExploreOptions()).Symmetry) return run.Outcome();
        var symmetry = new ClientSymmetry(run.Scenario);
        if (!symmetry.Any) return run.Outcome();
        var copy = run.Clone();
        copy.Canonicalize(symmetry);
        return copy.Outcome();
    }

    /// <summary>
    /// Replays the steps from the start to a state, describing each with the state after it.
    /// With symmetry reduction the steps were recorded on canonical states (interchangeable
    /// clients renamed into sorted order after every step), so a recorded step may name client 1
    /// where the path so far had client 2 doing it. The replay runs on the real, never renamed
    /// states: each step is translated through the renaming that maps the real state onto the
    /// canonical one it was recorded on. Every printed step is then one the printed state before
    /// it allows, and the path replays step by step with the step API. Also returns the last state.
    /// </summary>
    private static (IReadOnlyList<PathStep> Path, ScenarioRun End) PathTo(Scenario scenario, int index, int extraStep, List<int> parent, List<int> via, ClientSymmetry? symmetry)
    {
        var codes = new List<int>();
        for (var i = index; i > 0; i = parent[i]) codes.Add(via[i]);
        codes.Reverse();
        if (extraStep >= 0) codes.Add(extraStep);
        var fx = new List<Effect>();
        var run = new ScenarioRun(scenario);
        run.RegisterInitialSystemSessions(fx);
        var rename = symmetry is { Any: true } ? new Renaming(scenario) : null;
        var path = new List<PathStep>();
        foreach (var code in codes)
        {
            var step = Step.Decode(code);
            if (rename is not null) step = rename.ToReal(run, symmetry!, step);
            var what = run.Describe(step);
            fx.Clear();
            run.Apply(step, fx);
            var outcome = string.Join(", ", fx.Select(e => Describe(scenario, run, e)).Where(s => s.Length > 0));
            path.Add(new PathStep(outcome.Length > 0 ? $"{what}: {outcome}" : what, run.DescribeState(), step));
        }
        return (path, run);
    }

    /// <summary>Maps a step recorded on the canonical form of a state back onto the state itself.</summary>
    private sealed class Renaming(Scenario sc)
    {
        private readonly int[] _call = new int[sc.Calls.Count], _session = new int[sc.Sessions.Count], _client = new int[sc.Clients.Count];
        private readonly int[] _callBack = new int[sc.Calls.Count], _clientBack = new int[sc.Clients.Count];

        public Step ToReal(ScenarioRun run, ClientSymmetry symmetry, Step canonical)
        {
            // Canonical fills real id → canonical id; the step needs the inverse.
            symmetry.Canonical(run, _call, _session, _client);
            for (var i = 0; i < _call.Length; i++) _callBack[_call[i]] = i;
            for (var i = 0; i < _client.Length; i++) _clientBack[_client[i]] = i;
            var byClient = canonical.Kind is StepKind.Arrive or StepKind.Register;
            return canonical with { Subject = byClient ? _clientBack[canonical.Subject] : _callBack[canonical.Subject] };
        }
    }

    /// <summary>The finding as seen at the end of its replayed path (real names, not canonical ones).</summary>
    private static Finding AtEndOfPath(Scenario scenario, Finding template, IReadOnlyList<PathStep> path, ScenarioRun end)
    {
        switch (template.Kind)
        {
            case FindingKind.Stranded when end.Driver.FindStranded() is var s and >= 0:
                return Finding.Stranded(scenario, s, null, null, end.DescribeState()) with { Path = path };
            case FindingKind.Deadlock:
                var stuck = Enumerable.Range(0, scenario.Calls.Count).Where(c => end.Driver.Phase(c) != CallPhase.Ended).ToList();
                return Finding.Deadlock(scenario, stuck, end, null) with { Path = path };
            case FindingKind.InvariantBroken:
                return template with { State = end.DescribeState(), Path = path };
            default:
                return template with { Path = path };
        }
    }

    private static string Describe(Scenario sc, ScenarioRun run, Effect e) => e.Kind switch
    {
        EffectKind.Admitted => $"{sc.CallName(e.Subject)} admitted",
        EffectKind.Blocked => $"{sc.CallName(e.Subject)} blocks",
        EffectKind.Entered => $"{sc.CallName(e.Subject)} enters the secure world",
        EffectKind.Refused => $"{sc.CallName(e.Subject)} gets {e.Detail} and sleeps",
        EffectKind.Woken => $"wakes {sc.CallName(e.Subject)}",
        EffectKind.Absorbed => $"wake-up lands on running {sc.CallName(e.Subject)} (absorbed)",
        EffectKind.Forwarded => "forwards its absorbed wake-up",
        EffectKind.WakeupLost => $"the wake-up set on {sc.CallName(e.Subject)} since it woke is erased (lost)",
        EffectKind.SystemRegistered => $"system session {run.SessionName(e.Subject)} registered",
        EffectKind.SystemRefused => $"system session {run.SessionName(e.Subject)} refused ({e.Detail})",
        EffectKind.SystemUnregistered => $"system session {run.SessionName(e.Subject)} uncounted",
        EffectKind.InvariantBroken => $"INVARIANT BROKEN: {e.Detail}",
        _ => "",
    };
}
