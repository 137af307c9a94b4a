namespace Hil.Workloads.Xtest;

public enum XtestOutcome
{
    Passed,
    Failed,
    /// <summary>Started but no verdict printed (xtest crashed, was killed or timed out).</summary>
    Incomplete,
}

/// <summary>One subtest ("o regression_1013.2.17 Busy loop repeat 10000"); Depth 1 is a direct child of its case.</summary>
public sealed record XtestSubtest(string Name, string Title, int Depth, XtestOutcome Outcome, IReadOnlyList<string> FailureLines, TimeSpan? Duration);

/// <summary>One test case ("* regression_1013 Test concurrency with concurrent TA") with everything printed inside it.</summary>
public sealed record XtestCase(
    string Name, string Suite, string Id, string Title, XtestOutcome Outcome,
    IReadOnlyList<XtestSubtest> Subtests,
    /// <summary>xtest's assertion lines ("file.c:123: res has an unexpected value ..."), from the case and all its subtests.</summary>
    IReadOnlyList<string> FailureLines,
    /// <summary>Other lines the case printed (statistics, library errors).</summary>
    IReadOnlyList<string> Output,
    /// <summary>From the header to the verdict, when the output carried timestamps.</summary>
    TimeSpan? Duration)
{
    public int PassedSubtests => Subtests.Count(s => s.Outcome == XtestOutcome.Passed);
    public int FailedSubtests => Subtests.Count(s => s.Outcome == XtestOutcome.Failed);
}

/// <summary>xtest's closing counts ("N subtests of which M failed", ...). Its subtest count includes levels it does not print.</summary>
public sealed record XtestSummary(int Subtests, int SubtestsFailed, int Cases, int CasesFailed, int CasesSkipped);

/// <summary>A line of the "Result of testsuite" block: a case or failed subtest and, for a failure, where it first failed.</summary>
public sealed record XtestResultLine(string Name, XtestOutcome Outcome, string? FirstError);

/// <summary>Everything one xtest run printed, structured.</summary>
public sealed record XtestReport(
    IReadOnlyList<XtestCase> Cases,
    IReadOnlyList<XtestResultLine> Results,
    XtestSummary? Summary,
    /// <summary>"TEE test application done!" was printed.</summary>
    bool Completed)
{
    /// <summary>The case with this full name (regression_1013) or number (1013, when only one suite has it).</summary>
    public XtestCase Case(string nameOrId)
    {
        var byName = Cases.Where(c => c.Name == nameOrId).ToList();
        if (byName.Count == 1) return byName[0];
        var byId = Cases.Where(c => c.Id == nameOrId).ToList();
        return byId.Count switch
        {
            1 => byId[0],
            0 => throw new KeyNotFoundException($"no xtest case '{nameOrId}' in the output (cases: {string.Join(", ", Cases.Select(c => c.Name))})"),
            _ => throw new KeyNotFoundException($"'{nameOrId}' is ambiguous: {string.Join(", ", byId.Select(c => c.Name))}"),
        };
    }

    public bool AllPassed => Completed && Cases.Count > 0 && Cases.All(c => c.Outcome == XtestOutcome.Passed) && Summary is { CasesFailed: 0, SubtestsFailed: 0 };
}
