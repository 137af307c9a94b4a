using System.Text;

namespace Hil.Cli.Patches;

/// <summary>
/// What a patch run says: per driver the policies every trace conforms to and the verdict against
/// the policy it is judged by; the per-test A/B (control vs each patched driver); the mutation
/// score when known mutants ran. Written as patch-report.md beside the suites' results; the
/// figures of every driver side by side are in BOARD/system-threads.md (one column per driver).
/// </summary>
internal static class PatchReport
{
    public const string FileName = "patch-report.md";

    public static string Console(PatchRunOutcome o)
    {
        var sb = new StringBuilder();
        foreach (var d in o.All)
        {
            var passed = d.Tests.Count(t => t.Passed);
            sb.AppendLine($"{d.Driver.Name}: {passed}/{d.Tests.Count} tests passed, {d.Traces.Count} traces; conforms to: {Policies(d)}");
            sb.AppendLine($"  {VerdictLine(d)}");
            foreach (var line in d.Verdict == DriverVerdict.Implements ? [] : d.Evidence.Split('\n')) sb.AppendLine($"    {line}");
        }
        if (o.Mutants.Count > 0)
            sb.AppendLine($"mutation score: {o.Caught}/{o.Mutants.Count} ({100.0 * o.Caught / o.Mutants.Count:0}%) of the known mutants caught" +
                          (o.Caught < o.Mutants.Count ? $"; missed: {string.Join(", ", o.Mutants.Where(m => m.Verdict != DriverVerdict.Diverges).Select(m => m.Driver.Name))}" : ""));
        if (o.Controls.Count > 1)
            sb.AppendLine($"false alarms: {o.FalseAlarms}/{o.Controls.Count} control runs ({100.0 * o.FalseAlarms / o.Controls.Count:0}%)");
        sb.AppendLine($"verdict:    {(o.Passed ? "PASS" : "FAIL")}{(o.FalseAlarms > 0 ? " (the control did not behave as the stock driver must: no verdict on any patch)" : "")}");
        return sb.ToString();
    }

    public static string Render(PatchRunOutcome o, PatchRunRequest request, TimeSpan build, TimeSpan run, TimeSpan total)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# Patch run on {o.Board}");
        sb.AppendLine();
        sb.AppendLine($"Verdict: **{(o.Passed ? "PASS" : "FAIL")}**. Times: build {build.TotalSeconds:0.0} s, board {run.TotalSeconds:0.0} s, total {total.TotalSeconds:0.0} s.");
        if (o.Controls.Count > 1)
            sb.AppendLine($"False alarms: **{o.FalseAlarms}/{o.Controls.Count}** control runs (the unpatched driver, each run a full pass of the tests).");
        if (o.Mutants.Count > 0)
            sb.AppendLine($"Mutation score: **{o.Caught}/{o.Mutants.Count} ({100.0 * o.Caught / o.Mutants.Count:0}%)** of the known mutants (patches with a `Breaks:` line) caught.");
        sb.AppendLine();
        sb.AppendLine("| driver | series | judged by | tests passed | traces | conforms to (every trace) | verdict |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var d in o.All)
            sb.AppendLine($"| {d.Driver.Name} | {(d.Driver.Series.Count == 0 ? "(unpatched)" : string.Join("<br>", d.Driver.Series.Select(Path.GetFileName)))} | " +
                          $"{d.JudgedBy}{(d.Patch is { } p ? $" ({p.PolicyFrom})" : " (its own code)")} | {d.Tests.Count(t => t.Passed)}/{d.Tests.Count} | {d.Traces.Count} | {Policies(d)} | {VerdictLine(d)} |");
        sb.AppendLine();
        sb.AppendLine("## Per test (A/B)");
        sb.AppendLine();
        var tests = o.All.SelectMany(d => d.Tests.Select(t => t.Test)).Distinct().Order().ToList();
        sb.AppendLine("| test | " + string.Join(" | ", o.All.Select(d => d.Driver.Name)) + " |");
        sb.AppendLine("|---|" + string.Concat(o.All.Select(_ => "---|")));
        foreach (var t in tests)
            sb.AppendLine($"| {t} | " + string.Join(" | ", o.All.Select(d => d.Tests.FirstOrDefault(x => x.Test == t) is { } r
                ? r.Passed ? "passed" : $"**FAILED** [{r.FailureClass}]" : "-")) + " |");
        sb.AppendLine();
        sb.AppendLine("## Evidence");
        foreach (var d in o.All.Where(d => d.Verdict != DriverVerdict.Implements || d.Patch?.KnownMutant == true))
        {
            sb.AppendLine();
            sb.AppendLine($"### {d.Driver.Name}");
            foreach (var line in d.Evidence.Split('\n')) sb.AppendLine($"- {line}");
            foreach (var t in d.Tests.Where(t => !t.Passed))
                sb.AppendLine($"- FAILED {t.Test}: {t.FirstLine}");
        }
        sb.AppendLine();
        sb.AppendLine($"Each trace's verdict under every policy is in `policies.jsonl`; each test's files (trace, conformance.txt with the model's state at the divergence, console slices) under `{o.Board}/system-threads/tests/DRIVER/TEST/`; the figures of every driver side by side in `system-threads.md`.");
        return sb.ToString();
    }

    private static string Policies(DriverOutcome d) => d.Traces.Count == 0 ? "(no trace)" : d.ConformsTo.Count == 0 ? "no policy" : string.Join(", ", d.ConformsTo);

    private static string VerdictLine(DriverOutcome d) => (d.Verdict, d.Patch) switch
    {
        (DriverVerdict.Implements, null) => $"control: behaves as {d.JudgedBy} (the stock driver's policy)",
        (DriverVerdict.Implements, { KnownMutant: true }) => $"MISSED: implements {d.JudgedBy} as far as the tests see, yet it says what it breaks",
        (DriverVerdict.Implements, _) => $"implements {d.JudgedBy}, as claimed",
        (DriverVerdict.Diverges, null) => $"CONTROL FAILED: the stock driver does not behave as {d.JudgedBy}",
        (DriverVerdict.Diverges, { KnownMutant: true }) => $"caught: does not implement {d.JudgedBy}",
        (DriverVerdict.Diverges, _) => $"does NOT implement {d.JudgedBy} (claimed)",
        _ => "no verdict",
    };
}
