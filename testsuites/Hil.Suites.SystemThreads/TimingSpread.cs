using System.Globalization;

namespace Hil.Suites.SystemThreads;

/// <summary>A call the test scripted (module or teeholder): when it was due, when it reached the driver, how long it was to hold, and what the trace shows of it.</summary>
public sealed record ScriptedCall(string Name, ulong DueNs, ulong? RequestNs, uint HoldMs, TracedCall? Traced);

/// <summary>One lateness of the board against the script, in ms.</summary>
public sealed record Lateness(string What, double Ms);

/// <summary>
/// How far the board's own timing strayed from the script in one run: for every scripted call,
/// how late it reached the driver after its due time, and how much longer (or shorter) it held its
/// secure thread than scripted, as the trace shows. The largest of these is the tolerance a figure
/// of the same run is judged with — the model counts in exact milliseconds, the board does not, and
/// this is by how much it did not in that very run (not a number chosen beforehand).
/// </summary>
public sealed record TimingSpread(IReadOnlyList<Lateness> Samples)
{
    public static TimingSpread Of(IEnumerable<ScriptedCall> calls)
    {
        var samples = new List<Lateness>();
        foreach (var c in calls)
        {
            if (c.RequestNs is { } req) samples.Add(new Lateness($"{c.Name} start", ((long)req - (long)c.DueNs) / 1e6));
            if (c.Traced is { Enter: { } enter, Final: { } final }) samples.Add(new Lateness($"{c.Name} hold", (final - enter) * 1000 - c.HoldMs));
        }
        return new TimingSpread(samples);
    }

    /// <summary>
    /// Adds how long each scripted call that slept took from the complete() that let it in to its
    /// entry: the model wakes in zero time, the board in its scheduler's time, so a woken caller's
    /// entry is late by that much too.
    /// </summary>
    public TimingSpread WithWakeUps(IEnumerable<(string Name, TracedCall Call)> calls, IReadOnlyList<TracedWakeup> wakeups)
    {
        var more = new List<Lateness>(Samples);
        foreach (var (name, c) in calls)
        {
            if (c.Blocks + c.Refusals == 0 || c.Enter is not { } enter) continue;
            var last = wakeups.LastOrDefault(v => v.Waiter == c.Waiter && v.T >= c.Arrive && v.T <= enter);
            if (last is not null) more.Add(new Lateness($"{name} wake-up", (enter - last.T) * 1000));
        }
        return new TimingSpread(more);
    }

    /// <summary>The largest lateness either way, in ms.</summary>
    public double Ms => Samples.Count > 0 ? Samples.Max(s => Math.Abs(s.Ms))
        : throw new InvalidOperationException("no scripted call was measured: the board's timing spread is unknown");

    public Lateness Largest => Samples.MaxBy(s => Math.Abs(s.Ms))!;

    /// <summary>"±12.3 ms".</summary>
    public string Tolerance => "±" + Ms.ToString("0.#", CultureInfo.InvariantCulture) + " ms";

    /// <summary>How the tolerance came about, for the table and the assertion message.</summary>
    public string Describe() =>
        $"tolerance = the board's largest lateness against the script in the same run ({Samples.Count} starts, holds and wake-ups of the scripted calls; largest: {Largest.What} {Largest.Ms.ToString("0.#", CultureInfo.InvariantCulture)} ms)";

    /// <summary>Every sample, for the test's notes ("a start 1.2 ms, a hold 41 ms, ...").</summary>
    public string Details() => string.Join(", ", Samples.Select(s => $"{s.What} {s.Ms.ToString("0.##", CultureInfo.InvariantCulture)} ms"));
}
