using System.Globalization;
using System.Text.RegularExpressions;

namespace Hil.Workloads.Xtest;

/// <summary>
/// Reads xtest's console output into cases, subtests, failure lines and the closing summary.
/// Lines may carry a "@SECONDS|" prefix (board uptime, added by <see cref="XtestRunner"/>), from
/// which case and subtest durations are taken.
/// </summary>
public static partial class XtestOutputParser
{
    [GeneratedRegex(@"^@(?<t>\d+(?:\.\d+)?)\|(?<rest>.*)$")]
    private static partial Regex Stamp();

    [GeneratedRegex(@"^\* (?<name>\S+)(?: (?<title>.*))?$")]
    private static partial Regex CaseHeader();

    [GeneratedRegex(@"^o (?<name>\S+)(?: (?<title>.*))?$")]
    private static partial Regex SubtestHeader();

    [GeneratedRegex(@"^\s+(?<name>\S+) (?<verdict>OK|FAILED)$")]
    private static partial Regex Verdict();

    // An ADBG assertion: "./host/xtest/pkcs11_1000.c:244: rv has an unexpected value: ..."
    [GeneratedRegex(@"^\S+\.[ch]:\d+: ")]
    private static partial Regex FailureLine();

    [GeneratedRegex(@"^(?<name>\S+) (?<verdict>OK|FAILED)(?: first error at (?<at>.+))?$")]
    private static partial Regex ResultLine();

    [GeneratedRegex(@"^(?<n>\d+) subtests? of which (?<f>\d+) failed$")]
    private static partial Regex SubtestCount();

    [GeneratedRegex(@"^(?<n>\d+) test cases? of which (?<f>\d+) failed$")]
    private static partial Regex CaseCount();

    [GeneratedRegex(@"^(?<n>\d+) test cases? (?:were|was) skipped$")]
    private static partial Regex SkipCount();

    private sealed class OpenSubtest(string name, string title, int depth, double? start)
    {
        public string Name { get; } = name;
        public string Title { get; } = title;
        public int Depth { get; } = depth;
        public double? Start { get; } = start;
        public XtestOutcome Outcome { get; set; } = XtestOutcome.Incomplete;
        public List<string> Failures { get; } = [];
        public double? End { get; set; }
    }

    private sealed class OpenCase(string name, string title, double? start)
    {
        public string Name { get; } = name;
        public string Title { get; } = title;
        public double? Start { get; } = start;
        public double? End { get; set; }
        public XtestOutcome Outcome { get; set; } = XtestOutcome.Incomplete;
        public List<OpenSubtest> Subtests { get; } = [];
        public List<OpenSubtest> Stack { get; } = [];
        public List<string> Failures { get; } = [];
        public List<string> Output { get; } = [];
    }

    public static XtestReport Parse(string text)
    {
        var cases = new List<OpenCase>();
        var results = new List<XtestResultLine>();
        OpenCase? current = null;
        bool inSummary = false, completed = false;
        int? subtests = null, subtestsFailed = null, casesRun = null, casesFailed = null, skipped = null;

        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            double? t = null;
            if (Stamp().Match(line) is { Success: true } sm)
            {
                t = double.Parse(sm.Groups["t"].Value, CultureInfo.InvariantCulture);
                line = sm.Groups["rest"].Value;
            }
            if (line.Trim().Length == 0) continue;

            if (line.StartsWith("+----", StringComparison.Ordinal))
            {
                inSummary = true;
                current = null;
                continue;
            }
            if (line == "TEE test application done!")
            {
                completed = true;
                continue;
            }
            if (inSummary)
            {
                if (SubtestCount().Match(line) is { Success: true } a) { subtests = Int(a, "n"); subtestsFailed = Int(a, "f"); }
                else if (CaseCount().Match(line) is { Success: true } b) { casesRun = Int(b, "n"); casesFailed = Int(b, "f"); }
                else if (SkipCount().Match(line) is { Success: true } c) skipped = Int(c, "n");
                else if (ResultLine().Match(line) is { Success: true } r)
                    results.Add(new XtestResultLine(r.Groups["name"].Value, r.Groups["verdict"].Value == "OK" ? XtestOutcome.Passed : XtestOutcome.Failed,
                        r.Groups["at"].Success ? r.Groups["at"].Value : null));
                continue;
            }
            if (CaseHeader().Match(line) is { Success: true } ch)
            {
                current = new OpenCase(ch.Groups["name"].Value, ch.Groups["title"].Value, t);
                cases.Add(current);
                continue;
            }
            if (current is null) continue;  // the preamble (test IDs, suite banner)
            if (SubtestHeader().Match(line) is { Success: true } sh)
            {
                var name = sh.Groups["name"].Value;
                var depth = name.StartsWith(current.Name + ".", StringComparison.Ordinal)
                    ? name[(current.Name.Length + 1)..].Count(ch2 => ch2 == '.') + 1
                    : current.Stack.Count + 1;
                var sub = new OpenSubtest(name, sh.Groups["title"].Value, depth, t);
                current.Subtests.Add(sub);
                current.Stack.Add(sub);
                continue;
            }
            if (Verdict().Match(line) is { Success: true } v)
            {
                var name = v.Groups["name"].Value;
                var outcome = v.Groups["verdict"].Value == "OK" ? XtestOutcome.Passed : XtestOutcome.Failed;
                if (name == current.Name)
                {
                    current.Outcome = outcome;
                    current.End = t;
                    current.Stack.Clear();
                    continue;
                }
                var open = current.Stack.FindLastIndex(s => s.Name == name);
                if (open >= 0)
                {
                    current.Stack[open].Outcome = outcome;
                    current.Stack[open].End = t;
                    current.Stack.RemoveRange(open, current.Stack.Count - open);
                    continue;
                }
            }
            if (FailureLine().IsMatch(line))
            {
                current.Failures.Add(line);
                if (current.Stack.Count > 0) current.Stack[^1].Failures.Add(line);
            }
            else current.Output.Add(line.Trim());
        }

        var summary = subtests is not null && casesRun is not null
            ? new XtestSummary(subtests.Value, subtestsFailed!.Value, casesRun.Value, casesFailed!.Value, skipped ?? 0)
            : null;
        return new XtestReport(cases.Select(Finish).ToList(), results, summary, completed);
    }

    private static XtestCase Finish(OpenCase c)
    {
        var sep = c.Name.LastIndexOf('_');
        var (suite, id) = sep > 0 ? (c.Name[..sep], c.Name[(sep + 1)..]) : ("", c.Name);
        return new XtestCase(c.Name, suite, id, c.Title, c.Outcome,
            c.Subtests.Select(s => new XtestSubtest(s.Name, s.Title, s.Depth, s.Outcome, s.Failures, Span(s.Start, s.End))).ToList(),
            c.Failures, c.Output, Span(c.Start, c.End));
    }

    private static TimeSpan? Span(double? start, double? end) => start is { } a && end is { } b ? TimeSpan.FromSeconds(b - a) : null;

    private static int Int(Match m, string g) => int.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture);
}
