using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Hil.Model.Exploration;
using Hil.Model.Scenarios;
using Hil.Model.Simulation;

namespace Hil.Model.Execution;

/// <summary>Text and JSON-lines renderings of results (strings only; the caller writes them out).</summary>
public static class Rendering
{
    private static readonly JsonSerializerOptions Json = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    private static string Ms(long us) => (us / 1000.0).ToString("0.000", CultureInfo.InvariantCulture);

    public static IEnumerable<string> SimulationText(SimulationResult r)
    {
        foreach (var line in SimulationTextHead(r.Scenario)) yield return line;
        var rows = new List<string>();
        var timeline = new TimelineText(rows.Add);
        foreach (var e in r.Events) timeline.Write(e);
        foreach (var line in rows) yield return line;
        foreach (var line in SimulationTextTail(r)) yield return line;
    }

    public static IEnumerable<string> SimulationTextHead(Scenario sc)
    {
        yield return $"scenario {sc.Name}: policy {sc.Policy.Name}, {sc.Threads} secure thread(s), driver counts {sc.DriverTotal}, {sc.Calls.Count} call(s)";
        yield return $"{"time ms",10}  {"call",-18} {"event",-20} state after the step (shown when it changes; at most {ScenarioRun.ShownWaiters} waiters named)";
    }

    /// <summary>
    /// Timeline rows as the simulator produces them, so a long scenario streams out in constant
    /// memory; each row's state names at most <see cref="ScenarioRun.ShownWaiters"/> waiters.
    /// </summary>
    public sealed class TimelineText(Action<string> write) : ITimelineSink
    {
        private string? _last;

        public void Write(TimelineEvent e)
        {
            var state = e.State == _last ? "" : e.State;
            _last = e.State;
            write($"{Ms(e.TimeUs),10}  {e.Subject,-18} {e.Event + (e.Detail is { } d && e.Event is "ethread-limit" or "system-refused" or "invariant-broken" ? $" ({d})" : ""),-20} {state}".TrimEnd());
        }
    }

    public static IEnumerable<string> SimulationTextTail(SimulationResult r)
    {
        yield return "";
        yield return $"{"call",-18} {"class",-6} {"arrive",9} {"enter",9} {"end",9} {"waited",9} {"blocked",7} {"absorbed",8}";
        foreach (var c in r.Calls)
            yield return $"{c.Name,-18} {(c.Sys ? "system" : "normal"),-6} {Opt(c.ArrivedAt),9} {Opt(c.EnteredAt),9} {Opt(c.EndedAt),9} {Opt(c.AdmissionLatency),9} {c.TimesBlocked,7} {c.WakeupsAbsorbed,8}";
        yield return "";
        if (r.Findings.Count == 0) yield return "findings: none";
        foreach (var f in r.Findings)
        {
            yield return $"FINDING {f.Summary}";
            yield return $"  state: {f.State}";
        }
    }

    private static string Opt(long? us) => us is { } v ? Ms(v) : "-";

    public static IEnumerable<string> SimulationJson(SimulationResult r)
    {
        var rows = new List<string>();
        var timeline = new TimelineJson(rows.Add);
        foreach (var e in r.Events) timeline.Write(e);
        return rows.Concat(SimulationJsonTail(r));
    }

    /// <summary>One JSON line per timeline event, written as the simulator produces it.</summary>
    public sealed class TimelineJson(Action<string> write) : ITimelineSink
    {
        public void Write(TimelineEvent e) => write(JsonSerializer.Serialize(new
        {
            type = "event", t_ms = e.TimeUs / 1000.0, call = e.Subject, @event = e.Event, detail = e.Detail,
            free = e.Free, sys_req = e.SysReq, secure_free = e.SecureFree, state = e.State,
        }, Json));
    }

    public static IEnumerable<string> SimulationJsonTail(SimulationResult r)
    {
        foreach (var c in r.Calls)
            yield return JsonSerializer.Serialize(new
            {
                type = "call", call = c.Name, sys = c.Sys, arrive_ms = c.ArrivedAt / 1000.0, enter_ms = c.EnteredAt / 1000.0,
                end_ms = c.EndedAt / 1000.0, admission_latency_ms = c.AdmissionLatency / 1000.0, times_blocked = c.TimesBlocked,
                wakeups_absorbed = c.WakeupsAbsorbed,
            }, Json);
        foreach (var f in r.Findings) yield return FindingJson(f);
        yield return JsonSerializer.Serialize(new { type = "result", scenario = r.Scenario.Name, policy = r.Scenario.Policy.Name, findings = r.Findings.Count, outcome = r.Outcome }, Json);
    }

    public static IEnumerable<string> ExplorationText(ExplorationResult r)
    {
        var sc = r.Scenario;
        yield return $"scenario {sc.Name}: policy {sc.Policy.Name}, {sc.Threads} secure thread(s), driver counts {sc.DriverTotal}, {sc.Calls.Count} call(s)";
        yield return $"explored {r.States:N0} states, {r.Transitions:N0} transitions in {r.Elapsed.TotalSeconds:0.00} s ({r.StatesPerSecond:N0} states/s){(r.Complete ? "" : $" — INCOMPLETE: {r.IncompleteBecause ?? "state limit reached"}")}";
        yield return $"terminal states: {r.Stats.TerminalStates:N0} ({r.Stats.CompletedTerminalStates:N0} with every call finished), distinct outcomes: {r.FinalOutcomes.Count}";
        yield return $"most in the secure world at once: {r.Stats.MaxInSecure} (normal {r.Stats.MaxNormalInSecure}, system {r.Stats.MaxSystemInSecure})" +
                     (r.Stats.MaxNormalInSecureWhileSystemRegistered >= 0 ? $"; normal while a system session is registered: {r.Stats.MaxNormalInSecureWhileSystemRegistered}" : "");
        yield return $"a wake-up can be lost (set on a woken caller before its move to the tail): {(r.Stats.WakeupLossReachable ? "yes" : "no")}";
        if (r.Findings.Count == 0) { yield return "findings: none"; yield break; }
        foreach (var (kind, count) in r.FindingStates.OrderBy(k => k.Key))
            yield return $"{count:N0} state(s) with a {kind switch { FindingKind.Deadlock => "deadlock", FindingKind.Stranded => "stranded waiter", _ => "broken invariant" }}";
        foreach (var f in r.Findings)
        {
            yield return "";
            yield return $"FINDING {f.Summary}";
            yield return $"  shortest path ({f.Path?.Count ?? 0} steps):";
            var i = 1;
            foreach (var p in f.Path ?? [])
            {
                yield return $"  {i++,3}. {p.Step}";
                yield return $"       {p.StateAfter}";
            }
        }
    }

    public static IEnumerable<string> ExplorationJson(ExplorationResult r)
    {
        foreach (var f in r.Findings) yield return FindingJson(f);
        yield return JsonSerializer.Serialize(new
        {
            type = "result", scenario = r.Scenario.Name, policy = r.Scenario.Policy.Name, states = r.States, transitions = r.Transitions,
            seconds = r.Elapsed.TotalSeconds, complete = r.Complete, incomplete_because = r.IncompleteBecause, findings = r.Findings.Count,
            max_in_secure = r.Stats.MaxInSecure, max_normal_in_secure = r.Stats.MaxNormalInSecure, max_system_in_secure = r.Stats.MaxSystemInSecure,
            max_normal_while_system_registered = r.Stats.MaxNormalInSecureWhileSystemRegistered,
            terminal_states = r.Stats.TerminalStates, wakeup_loss_reachable = r.Stats.WakeupLossReachable, outcomes = r.FinalOutcomes.Order().ToList(),
        }, Json);
    }

    public static string FindingJson(Finding f) => JsonSerializer.Serialize(new
    {
        type = "finding", kind = f.KindLabel, summary = f.Summary, subject = f.Subject, state = f.State,
        at_ms = f.AtUs / 1000.0, until_ms = f.UntilUs / 1000.0,
        path = f.Path?.Select(p => new { step = p.Step, state = p.StateAfter }),
    }, Json);
}
