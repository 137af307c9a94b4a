using System.Globalization;
using System.Text.Json.Nodes;
using Hil.Model.Conformance;
using Hil.Model.Core;
using Hil.Model.Scenarios;

namespace Hil.Model.Tests;

/// <summary>
/// The checker as an oracle: conforming traces (simulated ones, with their counters, and the real
/// board traces) are changed in one place, in each way a broken tracer, a lost event or a wrong
/// driver would change them, and the checker must reject the result. Kinds that are always wrong
/// (a line the tracer always writes dropped where the task's later lines show the gap, a woken line
/// moved before the complete that caused it) must be caught every time; for the others (a swapped
/// wake-up target, a flipped sys flag, a shifted counter, lines whose loss nothing shows) a change
/// can be one the kernel also allows, and the rate is printed.
/// </summary>
public class MutationTests
{
    private sealed record Source(string Name, string[] Lines);

    private sealed record Mutant(string Kind, string Text, bool AlwaysWrong, string Where);

    private static readonly string[] DroppedKinds =
        ["wait_init", "admitted", "block", "woken", "complete", "final", "smc_begin", "smc_end", "sys_register", "close_begin"];

    private const int MaxPerKindAndSource = 25;

    private static IEnumerable<Source> Sources()
    {
        foreach (var name in new[] { "absorbed-wakeup", "total-minus-one", "etienne-v10-review", "scmi-deadlock", "jens-second-system-user", "v9-one-thread" })
            yield return new Source(name, Split(ConformanceTests.TraceOf(TestScenarios.Load(name), counters: true)));
        // Random contended scenarios, fixed seed: every policy, system sessions, closes.
        var rnd = new Random(11);
        for (var i = 0; i < 60; i++)
        {
            var policy = Policy.All[i % Policy.All.Count];
            var b = new ScenarioBuilder($"random-{i}", policy, threads: 1 + rnd.Next(3));
            var clients = 2 + rnd.Next(3);
            for (var c = 0; c < clients; c++)
            {
                b.Client($"k{c}", system: rnd.Next(4) == 0);
                var calls = 1 + rnd.Next(3);
                for (var k = 0; k < calls; k++) b.Call(at: rnd.Next(15), hold: 1 + rnd.Next(12));
                if (rnd.Next(5) == 0) b.Close(at: 0, hold: 1);
            }
            yield return new Source($"random-{i} ({policy.Name})", Split(ConformanceTests.TraceOf(b.Build(), counters: true)));
        }
        foreach (var f in Directory.GetFiles(Path.Combine(TestContext.CurrentContext.TestDirectory, "Traces"), "*.jsonl"))
            yield return new Source("board " + Path.GetFileName(f), File.ReadAllLines(f).Where(l => l.Length > 0).ToArray());
    }

    private static string[] Split(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private static JsonObject Parse(string line) => JsonNode.Parse(line)!.AsObject();

    private static string Ev(JsonObject o) => (string?)o["ev"] ?? "";

    private static string? Task(JsonObject o) => (string?)o["task"];

    private static string Join(IEnumerable<string> lines) => string.Join("\n", lines) + "\n";

    private static IEnumerable<Mutant> Mutants(Source s)
    {
        var objs = s.Lines.Select(Parse).ToArray();
        var events = Enumerable.Range(0, objs.Length).Where(i => objs[i]["type"] is null && Ev(objs[i]) != "mark").ToList();
        bool LaterLineOfTask(int i) => events.Any(j => j > i && Task(objs[j]) == Task(objs[i]));
        bool EarlierLineOfTask(int i) => events.Any(j => j < i && Task(objs[j]) == Task(objs[i]));

        // Dropping one line of a kind. Always wrong when the task's later lines show the gap (and,
        // for a wait_init, an earlier line shows the call did not begin before the trace).
        foreach (var kind in DroppedKinds)
            foreach (var i in Spread(events.Where(i => Ev(objs[i]) == kind)))
            {
                // The task's first line dropped leaves a trace that began a moment later; its last
                // one, a trace that ended a moment earlier: neither shows the gap.
                var shown = kind switch
                {
                    "complete" => true,   // its wait_final is in the trace: the wake-up it hands out must show
                    "sys_register" or "close_begin" => false,
                    _ => LaterLineOfTask(i) && EarlierLineOfTask(i),
                };
                yield return new Mutant($"drop {kind}", Join(s.Lines.Where((_, k) => k != i)), shown, $"line {i + 1}");
            }

        // A woken line moved before the complete line that woke it (same timestamp, so the file is
        // still well-formed): complete() runs before wait_for_completion can return.
        foreach (var i in Spread(events.Where(i => Ev(objs[i]) == "woken")))
        {
            var w = (string?)objs[i]["w"];
            var j = events.LastOrDefault(k => k < i && Ev(objs[k]) == "complete" && (string?)objs[k]["w"] == w, -1);
            var since = events.LastOrDefault(k => k < i && (string?)objs[k]["w"] == w && Ev(objs[k]) is "woken" or "wait_init", -1);
            if (j < 0 || j < since) continue;
            var moved = objs[i].DeepClone().AsObject();
            moved["t"] = objs[j]["t"]!.DeepClone();
            var lines = s.Lines.ToList();
            lines.RemoveAt(i);
            lines.Insert(j, moved.ToJsonString());
            yield return new Mutant("woken moved before its complete", Join(lines), true, $"line {i + 1} to {j + 1}");
        }

        // A wake-up handed to another caller in flight.
        var inFlight = new List<string>();
        for (var i = 0; i < objs.Length; i++)
        {
            var o = objs[i];
            var w = (string?)o["w"];
            if (Ev(o) == "wait_init" && w is not null) inFlight.Add(w);
            if (Ev(o) == "final" && w is not null) inFlight.Remove(w);
            if (Ev(o) != "complete" || i % 2 == 1 && s.Lines.Length > 400) continue;
            var other = inFlight.FirstOrDefault(x => x != w);
            if (other is null) continue;
            var m = o.DeepClone().AsObject();
            m["w"] = other;
            yield return new Mutant("wake-up target swapped", Join(s.Lines.Select((l, k) => k == i ? m.ToJsonString() : l)), false, $"line {i + 1}");
        }

        // A call's sys flag flipped.
        foreach (var i in Spread(events.Where(i => Ev(objs[i]) == "wait_init" && objs[i]["sys"] is not null)))
        {
            var m = objs[i].DeepClone().AsObject();
            m["sys"] = (int)m["sys"]! == 1 ? 0 : 1;
            yield return new Mutant("sys flag flipped", Join(s.Lines.Select((l, k) => k == i ? m.ToJsonString() : l)), false, $"line {i + 1}");
        }

        // One counter shifted by one (free, sysreq), or a completion flag flipped.
        foreach (var i in Spread(events.Where(i => objs[i]["free"] is not null || objs[i]["sysreq"] is not null || objs[i]["done"] is not null)))
        {
            var m = objs[i].DeepClone().AsObject();
            var field = m["free"] is not null ? "free" : m["sysreq"] is not null ? "sysreq" : "done";
            var v = (int)m[field]!;
            m[field] = field == "done" ? 1 - v : v == 0 ? 1 : (i % 2 == 0 ? v + 1 : v - 1);
            yield return new Mutant($"counter shifted ({field})", Join(s.Lines.Select((l, k) => k == i ? m.ToJsonString() : l)), false, $"line {i + 1}");
        }
    }

    /// <summary>At most <see cref="MaxPerKindAndSource"/> of the candidates, spread over the trace.</summary>
    private static IEnumerable<int> Spread(IEnumerable<int> candidates)
    {
        var all = candidates.ToList();
        if (all.Count <= MaxPerKindAndSource) return all;
        return Enumerable.Range(0, MaxPerKindAndSource).Select(k => all[k * all.Count / MaxPerKindAndSource]);
    }

    private static bool Rejected(string text)
    {
        try { return !ConformanceChecker.CheckText(text, "mutant.jsonl").Conforms; }
        catch (TraceFormatException) { return true; }
    }

    [Test]
    public void Every_mutation_that_is_always_wrong_is_rejected_and_the_rate_of_the_others_is_printed()
    {
        var counts = new SortedDictionary<string, (int All, int Detected, int Wrong, int WrongDetected)>();
        var missed = new List<string>();
        var sources = 0;
        foreach (var s in Sources())
        {
            var original = ConformanceChecker.CheckText(Join(s.Lines), s.Name);
            Assert.That(original.Conforms, Is.True, () => $"{s.Name} must conform before it is mutated:\n" + string.Join("\n", ConformanceRendering.Text(original)));
            sources++;
            foreach (var m in Mutants(s))
            {
                var rejected = Rejected(m.Text);
                var c = counts.GetValueOrDefault(m.Kind);
                counts[m.Kind] = (c.All + 1, c.Detected + (rejected ? 1 : 0), c.Wrong + (m.AlwaysWrong ? 1 : 0), c.WrongDetected + (m.AlwaysWrong && rejected ? 1 : 0));
                if (m.AlwaysWrong && !rejected && missed.Count < 20) missed.Add($"{s.Name}: {m.Kind} at {m.Where}");
            }
        }
        TestContext.Out.WriteLine($"{sources} conforming traces mutated");
        TestContext.Out.WriteLine($"{"mutation",-34} {"mutants",8} {"rejected",9} {"rate",7} {"always wrong",13} {"rejected",9}");
        foreach (var (kind, c) in counts)
            TestContext.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{kind,-34} {c.All,8} {c.Detected,9} {100.0 * c.Detected / Math.Max(1, c.All),6:0.0}% {c.Wrong,13} {c.WrongDetected,9}"));
        Assert.That(missed, Is.Empty, "always-wrong mutants that still conform:\n" + string.Join("\n", missed));
        // Each kind the tracer always writes was exercised where its loss shows.
        foreach (var kind in new[] { "wait_init", "admitted", "block", "woken", "complete", "final", "smc_begin", "smc_end" })
            Assert.That(counts.GetValueOrDefault($"drop {kind}").Wrong, Is.GreaterThan(0), $"no observable drop of {kind} was tried");
        Assert.That(counts.GetValueOrDefault("woken moved before its complete").Wrong, Is.GreaterThan(0));
        foreach (var kind in new[] { "wake-up target swapped", "sys flag flipped" })
            Assert.That(counts.GetValueOrDefault(kind).Detected, Is.GreaterThan(0), $"{kind}: not one mutant rejected");
        Assert.That(counts.Where(kv => kv.Key.StartsWith("counter shifted")).Sum(kv => kv.Value.Detected), Is.GreaterThan(0), "counter shifts: not one rejected");
    }
}
