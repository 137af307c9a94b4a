using System.Diagnostics;
using CsCheck;
using Hil.Model.Scenarios;
using Hil.Model.Simulation;

namespace Hil.Model.Tests;

/// <summary>
/// More malformed scenarios than any corpus holds: a generator takes valid scenario text and breaks
/// it (drops, repeats or swaps lines, puts odd tokens into values, cuts the text short, adds YAML
/// constructs a scenario never has). Every variant must end as a scenario or a ScenarioException
/// naming file, line and field — no other exception, and within a time budget.
/// </summary>
public class ScenarioFuzzTests
{
    private const string Valid = """
        policy: mainline
        threads: 2
        driver_threads: 2
        clients:
          - name: A
            calls: [{ id: c1, at: 0, hold: 3000 }, { id: c2, op: close, hold: 1 }]
          - name: B
            sessions: [{ name: clk, system: true }]
            calls: [{ id: rate, at: 200, hold: 10, session: clk, needs: [A/c1] }]
          - name: C
            calls:
              - { id: r, op: register-system }
              - { at: 5, hold: 100 }
        """;

    private static readonly string[] Tokens =
    [
        "", "-1", "0", "1e400", ".nan", "~", "null", "[", "]", "{", "}", "&a", "*a", "!!binary", "---", "...", "\t", "'", "\"",
        "99999999999999999999", "register-system", "close", "A/c1", "x/y/z", ":", "- ", "#", "\u0000", "\u00e9", "%YAML 1.2", "? k", "|",
    ];

    private static readonly Gen<string> Broken =
        Gen.Select(Gen.Int[0, 6], Gen.Int[0, 1000], Gen.Int[0, 1000], Gen.Int[0, Tokens.Length - 1]).Select((kind, a, b, t) =>
        {
            var lines = Valid.Split('\n').ToList();
            var i = a % lines.Count;
            var j = b % lines.Count;
            switch (kind)
            {
                case 0: lines.RemoveAt(i); break;
                case 1: lines.Insert(i, lines[j]); break;
                case 2: (lines[i], lines[j]) = (lines[j], lines[i]); break;
                case 3:
                    var colon = lines[i].IndexOf(':');
                    lines[i] = colon < 0 ? Tokens[t] + lines[i] : lines[i][..(colon + 1)] + " " + Tokens[t];
                    break;
                case 4: return Valid[..(a * Valid.Length / 1001)];
                case 5: lines.Insert(i, new string(' ', b % 7) + Tokens[t]); break;
                default:
                    var at = a % Math.Max(1, lines[i].Length);
                    lines[i] = lines[i].Insert(at, Tokens[t]);
                    break;
            }
            return string.Join('\n', lines);
        });

    [Test]
    public void EveryBrokenScenarioIsAScenarioOrOneClearError()
    {
        var parsed = 0;
        var refused = 0;
        Broken.Sample(text =>
        {
            var clock = Stopwatch.StartNew();
            try
            {
                var scenario = ScenarioParser.Parse(text, "fuzz.yaml");
                Simulator.Run(scenario);
                parsed++;
            }
            catch (ScenarioException ex)
            {
                refused++;
                Assert.That(ex.Message, Does.Match(@"^fuzz\.yaml:\d+: [^:]*: \S"), "file:line: field: problem");
                Assert.That(ex.Message, Does.Not.Contain("\n"), "one line");
            }
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), text);
        }, iter: 3000);
        TestContext.Out.WriteLine($"3000 variants: {parsed} scenarios, {refused} clear errors, 0 other exceptions");
        Assert.That(refused, Is.GreaterThan(0), "the generator must produce broken input");
    }
}
