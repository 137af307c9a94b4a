using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Hil.Patches;

namespace Hil.Cli.Patches;

/// <summary>One test of one driver, from the suite's NUnit XML.</summary>
internal sealed record DriverTest(string Driver, string Test, string Outcome, string? FailureClass, string? Message)
{
    public bool Passed => Outcome == "Passed";
    public string FirstLine => (Message ?? "").Trim().Split('\n')[0];
}

/// <summary>One judged trace: its verdict under every policy (a line of the suite's policies.jsonl).</summary>
internal sealed record JudgedTrace(string Driver, string Test, string Trace, string JudgedBy, IReadOnlyList<PolicyVerdict> Policies)
{
    public PolicyVerdict? Under(string policy) => Policies.FirstOrDefault(p => p.Policy == policy);
}

internal sealed record PolicyVerdict(string Policy, bool Conforms, int? Line, string? Reason);

/// <summary>What one driver did: its tests, its traces, the policies every trace conforms to, and the verdict.</summary>
internal sealed record DriverOutcome(
    DriverUnderTest Driver,
    PatchedDriver? Patch,
    string JudgedBy,
    IReadOnlyList<DriverTest> Tests,
    IReadOnlyList<JudgedTrace> Traces,
    IReadOnlyList<string> ConformsTo,
    DriverVerdict Verdict,
    string Evidence);

internal enum DriverVerdict
{
    /// <summary>Every test passed and every trace conforms to the policy it is judged by.</summary>
    Implements,
    /// <summary>A product failure or a trace that diverges from the policy it is judged by.</summary>
    Diverges,
    /// <summary>No verdict: the board or the harness failed, or nothing ran.</summary>
    Inconclusive,
}

internal sealed record PatchRunOutcome(string Board, IReadOnlyList<DriverOutcome> Controls, IReadOnlyList<DriverOutcome> Patched)
{
    /// <summary>The first control run: the A of every A/B.</summary>
    public DriverOutcome Control => Controls[0];
    public IReadOnlyList<DriverOutcome> All => [.. Controls, .. Patched];
    /// <summary>Control runs that raised an alarm (a failed test or a trace off the stock policy): the harness's false alarms.</summary>
    public int FalseAlarms => Controls.Count(c => c.Verdict != DriverVerdict.Implements);
    public IReadOnlyList<DriverOutcome> Mutants => [.. Patched.Where(p => p.Patch!.KnownMutant)];
    public int Caught => Mutants.Count(m => m.Verdict == DriverVerdict.Diverges);

    /// <summary>
    /// The run's verdict: the control behaves as the stock driver must, every known mutant (a patch
    /// saying what it Breaks) is caught, and every other patch implements the policy it claims.
    /// </summary>
    public bool Passed => FalseAlarms == 0 && Patched.All(p =>
        p.Patch!.KnownMutant ? p.Verdict == DriverVerdict.Diverges : p.Verdict == DriverVerdict.Implements);
}

/// <summary>Reads a patch run's results (NUnit XML, policies.jsonl) back and judges every driver.</summary>
internal static partial class PatchVerdicts
{
    public static PatchRunOutcome Judge(IReadOnlyList<string> folders, string board, DriverManifest manifest, IReadOnlyList<PatchedDriver> patched, string controlPolicy)
    {
        var tests = folders.SelectMany(f => ReadTests(Path.Combine(f, SuiteRun.SuiteName(PatchRunJob.SuiteProject) + ".nunit.xml"))).ToList();
        var traces = folders.SelectMany(f => ReadTraces(Path.Combine(f, "policies.jsonl"))).ToList();
        DriverOutcome Of(DriverUnderTest d)
        {
            var p = patched.FirstOrDefault(x => x.Name == d.Name);
            var judgedBy = p?.Policy ?? controlPolicy;
            var t = tests.Where(x => x.Driver == d.Name).ToList();
            var tr = traces.Where(x => x.Driver == d.Name).ToList();
            var conformsTo = tr.Count == 0 ? [] : tr.Select(x => x.Policies.Where(v => v.Conforms).Select(v => v.Policy))
                .Aggregate((a, b) => a.Intersect(b)).ToList();
            var (verdict, evidence) = Decide(judgedBy, t, tr);
            return new DriverOutcome(d, p, judgedBy, t, tr, conformsTo, verdict, evidence);
        }
        return new PatchRunOutcome(board, [.. manifest.Drivers.Where(d => d.IsControl).Select(Of)], [.. manifest.Drivers.Where(d => !d.IsControl).Select(Of)]);
    }

    private static (DriverVerdict, string) Decide(string policy, IReadOnlyList<DriverTest> tests, IReadOnlyList<JudgedTrace> traces)
    {
        var diverging = traces.FirstOrDefault(x => x.Under(policy) is { Conforms: false });
        var product = tests.FirstOrDefault(x => !x.Passed && x.FailureClass == "product");
        if (diverging is not null || product is not null)
        {
            var lines = new List<string>();
            if (diverging?.Under(policy) is { } v)
                lines.Add($"{diverging.Test}: the trace diverges from {policy} at line {v.Line}: {v.Reason} ({diverging.Trace})");
            if (product is not null) lines.Add($"{product.Test}: {product.FirstLine}");
            return (DriverVerdict.Diverges, string.Join("\n", lines));
        }
        if (tests.Count == 0) return (DriverVerdict.Inconclusive, "no test ran on this driver (see the suite's test log)");
        if (tests.FirstOrDefault(x => !x.Passed) is { } other)
            return (DriverVerdict.Inconclusive, $"{other.Test}: {other.FirstLine}");
        if (traces.Count == 0) return (DriverVerdict.Inconclusive, "no trace was judged");
        return (DriverVerdict.Implements, $"{tests.Count} tests passed, {traces.Count} traces conform to {policy}");
    }

    /// <summary>The suite's test cases; the fixture's argument "BOARD+DRIVER" names the driver.</summary>
    public static IReadOnlyList<DriverTest> ReadTests(string nunitXml)
    {
        if (!File.Exists(nunitXml)) return [];
        return [.. XDocument.Load(nunitXml).Descendants("test-case").Select(tc =>
        {
            var classname = (string?)tc.Attribute("classname") ?? "";
            var m = FixtureArgument().Match(classname);
            var driver = m.Success && m.Groups[1].Value.Split('+') is [_, var d] ? d : "";
            var message = tc.Element("failure")?.Element("message")?.Value;
            var cls = Regex.Match(message ?? "", @"^\s*(?:[A-Za-z]+: )?\[(infrastructure|product|test)\]") is { Success: true } c ? c.Groups[1].Value
                : message is null ? null : "unclassified";
            var suiteClass = classname.Split('(')[0].Split('.').Last();
            return new DriverTest(driver, $"{suiteClass}.{(string?)tc.Attribute("name") ?? "?"}", (string?)tc.Attribute("result") ?? "?", cls, message);
        })];
    }

    public static IReadOnlyList<JudgedTrace> ReadTraces(string jsonl)
    {
        if (!File.Exists(jsonl)) return [];
        var list = new List<JudgedTrace>();
        foreach (var line in File.ReadLines(jsonl))
        {
            if (line.Trim().Length == 0) continue;
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            list.Add(new JudgedTrace(
                r.GetProperty("driver").GetString() ?? "",
                r.GetProperty("test").GetString() ?? "",
                r.GetProperty("trace").GetString() ?? "",
                r.GetProperty("judged_by").GetString() ?? "",
                [.. r.GetProperty("policies").EnumerateArray().Select(p => new PolicyVerdict(
                    p.GetProperty("policy").GetString()!, p.GetProperty("conforms").GetBoolean(),
                    p.GetProperty("line").ValueKind == JsonValueKind.Number ? p.GetProperty("line").GetInt32() : null,
                    p.GetProperty("reason").GetString()))]));
        }
        return list;
    }

    [GeneratedRegex(@"\(([^()]*)\)\s*$")]
    private static partial Regex FixtureArgument();
}
