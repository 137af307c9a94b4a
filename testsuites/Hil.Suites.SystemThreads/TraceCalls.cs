using System.Text.Json;

namespace Hil.Suites.SystemThreads;

/// <summary>One call as a converted board trace shows it (times in seconds of the board's mono clock).</summary>
public sealed record TracedCall(string Task, int Pid, string Waiter, bool Sys, double Arrive, double? Enter, double? Final, int Blocks, int Refusals)
{
    /// <summary>wait_init to the SMC that got a secure thread, in ms.</summary>
    public double? AdmissionMs => Enter is { } e ? (e - Arrive) * 1000 : null;
}

/// <summary>A wake-up the driver handed out: <see cref="Task"/> (the caller ending) completed waiter <see cref="Waiter"/> at <see cref="T"/>.</summary>
public sealed record TracedWakeup(double T, string Task, string Waiter);

/// <summary>
/// <see cref="Woken"/>, completed at <see cref="WokenAt"/>, had not yet acted on it when <see cref="By"/>
/// was admitted or ended at <see cref="T"/>; or (<see cref="Twice"/>) <see cref="By"/>'s end completed it a second time.
/// </summary>
public sealed record Overtaking(double T, string Woken, double WokenAt, string By, bool Twice = false)
{
    public string Describe(double t0) => Twice
        ? $"{By}'s end completed {Woken} twice at {(T - t0) * 1000:0.###} ms ({Woken} had consumed the first wake-up before the second scan)"
        : $"{Woken} was woken at {(WokenAt - t0) * 1000:0.###} ms and {By} was admitted or ended {(T - WokenAt) * 1e6:0} µs later, before {Woken} acted on its wake-up";

    /// <summary>The first overtaking in [<paramref name="t0"/>, <paramref name="until"/>], described; null when there is none.</summary>
    public static string? Before(IReadOnlyList<Overtaking> all, double t0, double until) =>
        all.FirstOrDefault(o => o.T >= t0 && o.T <= until) is { } o ? o.Describe(t0) : null;
}

/// <summary>
/// Reads a hil-cq-trace file into per-call records, to tie the module's and the holder's records
/// (by thread id and time) to what the driver did with them. The model has already judged the
/// trace; this only extracts figures for the reports and the per-test assertions.
/// </summary>
public static class TraceCalls
{
    public static IReadOnlyList<TracedCall> Read(string path)
    {
        var done = new List<TracedCall>();
        var open = new Dictionary<string, Builder>();
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            var e = doc.RootElement;
            if (!e.TryGetProperty("ev", out var evp) || !e.TryGetProperty("task", out var taskp)) continue;
            var ev = evp.GetString();
            var task = taskp.GetString() ?? "";
            var t = e.TryGetProperty("t", out var tp) ? tp.GetDouble() : 0;
            open.TryGetValue(task, out var b);
            switch (ev)
            {
                case "wait_init":
                    b = new Builder(task, e.GetProperty("w").GetString() ?? "", e.TryGetProperty("sys", out var s) && s.ValueKind == JsonValueKind.Number && s.GetInt32() == 1, t);
                    open[task] = b;
                    break;
                case "block": if (b is not null) b.Blocks++; break;
                case "smc_begin":
                    if (b is not null && e.TryGetProperty("smc", out var k) && k.GetString() == "call") b.LastSmc = t;
                    break;
                case "smc_end":
                    if (b is null || !e.TryGetProperty("result", out var rr)) break;
                    if (rr.GetString() is "ethread_limit" or "busy") b.Refusals++;
                    else b.Enter ??= b.LastSmc;
                    break;
                case "final":
                    if (b is null) break;
                    done.Add(new TracedCall(task, PidOf(task), b.Waiter, b.Sys, b.Arrive, b.Enter, t, b.Blocks, b.Refusals));
                    open.Remove(task);
                    break;
            }
        }
        done.AddRange(open.Values.Select(b => new TracedCall(b.Task, PidOf(b.Task), b.Waiter, b.Sys, b.Arrive, b.Enter, null, b.Blocks, b.Refusals)));
        return done.OrderBy(c => c.Arrive).ToList();
    }

    /// <summary>Every wake-up (complete line) of the trace, in order.</summary>
    public static IReadOnlyList<TracedWakeup> Wakeups(string path) => Events(path, "complete");

    /// <summary>Each time a sleeping caller returned from its wait (consumed a wake-up): <see cref="TracedWakeup.Task"/> is the caller itself.</summary>
    public static IReadOnlyList<TracedWakeup> Wokens(string path) => Events(path, "woken");

    private static IReadOnlyList<TracedWakeup> Events(string path, string kind)
    {
        var wakeups = new List<TracedWakeup>();
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            var e = doc.RootElement;
            if (!e.TryGetProperty("ev", out var ev) || ev.GetString() != kind) continue;
            wakeups.Add(new TracedWakeup(e.TryGetProperty("t", out var tp) ? tp.GetDouble() : 0,
                e.GetProperty("task").GetString() ?? "", e.GetProperty("w").GetString() ?? ""));
        }
        return wakeups;
    }

    /// <summary>
    /// Where the run went a way a timed replay cannot follow (the replay wakes callers and lets them
    /// retry in zero time; the model allows every one of these, and the conformance check follows the
    /// board's own order): (1) a woken caller overtaken — between the complete() that woke it and its
    /// next decision (admitted, blocked, or its SMC's answer) another caller was admitted or ended;
    /// (2) one end completing the same waiter twice — the waiter had consumed the first wake-up before
    /// the end scanned the list again, so the second went to it instead of the next waiter.
    /// </summary>
    public static IReadOnlyList<Overtaking> Overtakings(string path)
    {
        var found = new List<Overtaking>();
        var taskOf = new Dictionary<string, string>();
        var sleeping = new HashSet<string>();
        // Each waking waiter: since when, whether it has left its wait, and the end (ender, its final) that woke it.
        var waking = new Dictionary<string, (double Since, bool Returned, string Ender, double EndAt)>();
        var lastFinal = new Dictionary<string, double>();
        var handedSinceFinal = new Dictionary<string, HashSet<string>>();
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            var e = doc.RootElement;
            if (!e.TryGetProperty("ev", out var evp) || !e.TryGetProperty("task", out var taskp)) continue;
            var task = taskp.GetString() ?? "";
            var t = e.TryGetProperty("t", out var tp) ? tp.GetDouble() : 0;
            var w = e.TryGetProperty("w", out var wp) ? wp.GetString() ?? "" : "";
            var ev = evp.GetString();
            // The waiter this task is (its own events end its waking window at its next decision).
            var own = waking.Keys.FirstOrDefault(v => taskOf.GetValueOrDefault(v) == task);
            switch (ev)
            {
                case "wait_init": taskOf[w] = task; break;
                case "block": sleeping.Add(w); break;
                case "complete":
                    if (sleeping.Contains(w)) waking.TryAdd(w, (t, false, task, lastFinal.GetValueOrDefault(task)));
                    var handed = handedSinceFinal.GetValueOrDefault(task);
                    if (handed is not null && !handed.Add(w))
                        found.Add(new Overtaking(t, taskOf.GetValueOrDefault(w, w), t, task, Twice: true));
                    break;
                case "woken":
                    sleeping.Remove(w);
                    if (waking.TryGetValue(w, out var k)) waking[w] = k with { Returned = true };
                    break;
            }
            // Callers woken by the same end race for the lock (the rule tests compare them as a set): one
            // of them going first is no overtaking.
            if (ev is "admitted" or "final")
                foreach (var (v, k) in waking)
                    if (taskOf.GetValueOrDefault(v) != task
                        && !(own is not null && waking[own].Ender == k.Ender && waking[own].EndAt == k.EndAt))
                        found.Add(new Overtaking(t, taskOf.GetValueOrDefault(v, v), k.Since, task));
            if (ev == "final") { handedSinceFinal[task] = []; lastFinal[task] = t; }
            else if (ev is "wait_init" or "close_begin") handedSinceFinal.Remove(task);
            if (own is not null && waking[own].Returned && ev is "admitted" or "block" or "smc_end") waking.Remove(own);
        }
        return found;
    }

    /// <summary>ftrace names a task "comm-pid"; comm may itself contain '-'.</summary>
    public static int PidOf(string task) => int.TryParse(task.AsSpan(task.LastIndexOf('-') + 1), out var pid) ? pid : -1;

    /// <summary>The call made by thread <paramref name="tid"/> that entered the driver nearest to <paramref name="requestNs"/>.</summary>
    public static TracedCall? ForThread(IReadOnlyList<TracedCall> calls, int? tid, ulong? requestNs)
    {
        if (tid is not { } pid || requestNs is not { } req) return null;
        var at = req / 1e9;
        return calls.Where(c => c.Pid == pid).OrderBy(c => Math.Abs(c.Arrive - at)).FirstOrDefault(c => Math.Abs(c.Arrive - at) < 0.5);
    }

    private sealed class Builder(string task, string waiter, bool sys, double arrive)
    {
        public string Task { get; } = task;
        public string Waiter { get; } = waiter;
        public bool Sys { get; } = sys;
        public double Arrive { get; } = arrive;
        public double? Enter;
        public double LastSmc = arrive;
        public int Blocks;
        public int Refusals;
    }
}
