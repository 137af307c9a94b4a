using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Hil.Model.Core;

namespace Hil.Model.Conformance;

/// <param name="Progress">Called every 65,536 events with the count so far (progress display, memory sampling).</param>
/// <param name="RaceWindow">How long after its probe a critical section may still run (a task can be
/// preempted between probe and lock; under emulation a vCPU can stall for milliseconds).</param>
/// <param name="BacktrackEvents">How many lines back an order of racing critical sections may still be revised.</param>
public sealed record ConformanceOptions(Policy? Policy = null, int? Threads = null, int? DriverThreads = null,
    Action<long>? Progress = null, int BacktrackEvents = 4000)
{
    public TimeSpan RaceWindow { get; init; } = TimeSpan.FromSeconds(2);
}

/// <summary>The first event the model forbids: where, what the model allowed instead, and its state before it.</summary>
public sealed record Divergence(long Line, double Time, string Task, string Event, string Reason, string StateBefore, IReadOnlyList<string> Before);

/// <summary>What the trace showed, counted while checking (for reports beside the model's prediction).</summary>
public sealed record ConformanceStats(
    long Calls,
    long SystemCalls,
    long Blocks,
    long Refusals,
    long WakeupsObserved,
    long WakeupsAbsorbed,
    int MaxInSecure,
    int MaxNormalInSecure,
    int MaxSystemInSecure,
    int MaxNormalInSecureWhileSystemRegistered,
    int PreexistingCalls,
    /// <summary>Times the checker went back to try another order of racing critical sections.</summary>
    long Backtracks,
    /// <summary>Times the probe order was not the lock order (a later-probed critical section ran first).</summary>
    long Reorderings,
    /// <summary>Wake-ups set on a caller between its waking and its move to the tail, erased by reinit_completion.</summary>
    long WakeupsLost,
    /// <summary>Counter reads (free, sys_req, done) that differed from the model at their line (advisory: read before the lock).</summary>
    long CounterMismatches);

public sealed record ConformanceResult(
    string Source,
    Policy Policy,
    int Threads,
    int DriverTotal,
    long Events,
    bool Conforms,
    Divergence? Divergence,
    ConformanceStats Stats,
    TimeSpan Elapsed,
    IReadOnlyList<string> Notes)
{
    public double EventsPerSecond => Events / Math.Max(Elapsed.TotalSeconds, 1e-9);
}

public static class ConformanceRendering
{
    public static IEnumerable<string> Text(ConformanceResult r)
    {
        yield return $"trace {r.Source}: policy {r.Policy.Name}, {r.Threads} secure thread(s), driver counts {r.DriverTotal}";
        yield return $"checked {r.Events:N0} events in {r.Elapsed.TotalSeconds:0.00} s ({r.EventsPerSecond:N0} events/s)";
        var s = r.Stats;
        yield return $"calls {s.Calls:N0} (system {s.SystemCalls:N0}), blocked {s.Blocks:N0}, refused by the secure world {s.Refusals:N0}, wake-ups {s.WakeupsObserved:N0} (absorbed by running callers {s.WakeupsAbsorbed:N0}, lost {s.WakeupsLost:N0})";
        yield return $"most in the secure world at once: {s.MaxInSecure} (normal {s.MaxNormalInSecure}, system {s.MaxSystemInSecure})" +
                     (s.MaxNormalInSecureWhileSystemRegistered >= 0 ? $"; normal while a system session is registered: {s.MaxNormalInSecureWhileSystemRegistered}" : "");
        yield return $"probe order differed from lock order {s.Reorderings:N0} time(s) in the accepted history; {s.Backtracks:N0} backtrack(s) to find it";
        if (s.CounterMismatches > 0)
            yield return $"note: {s.CounterMismatches:N0} counter read(s) differed from the model at their line (read before the lock; advisory)";
        foreach (var n in r.Notes) yield return $"note: {n}";
        if (r.Conforms) { yield return "CONFORMS: every event is one the model allows"; yield break; }
        var d = r.Divergence!;
        yield return $"DIVERGES at line {d.Line} (t={d.Time.ToString("0.000000", CultureInfo.InvariantCulture)} s, task {d.Task}): {d.Event}";
        yield return $"  model: {d.Reason}";
        yield return $"  model state before it: {d.StateBefore}";
        if (d.Before.Count > 0)
        {
            yield return "  preceding events:";
            foreach (var b in d.Before) yield return $"    {b}";
        }
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public static IEnumerable<string> Json(ConformanceResult r)
    {
        yield return JsonSerializer.Serialize(new
        {
            type = "conformance", source = r.Source, policy = r.Policy.Name, threads = r.Threads, driver_total = r.DriverTotal,
            events = r.Events, conforms = r.Conforms, seconds = r.Elapsed.TotalSeconds, events_per_second = r.EventsPerSecond,
            stats = r.Stats, notes = r.Notes,
            divergence = r.Divergence is { } d ? new { line = d.Line, t = d.Time, task = d.Task, @event = d.Event, reason = d.Reason, state_before = d.StateBefore, before = d.Before } : null,
        }, JsonOptions);
    }
}
