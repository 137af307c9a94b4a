using Hil.Boards.Failures;
using Hil.Model.Conformance;
using Hil.Model.Core;
using Hil.Suites.Common;
using Hil.Workloads.Kmod;
using Hil.Workloads.Tracing;

namespace Hil.Suites.SystemThreads;

/// <summary>How every traced workload of these suites is judged: the trace replayed by the model, its report attached.</summary>
public static class TraceVerdicts
{
    /// <summary>The trace must be complete and conform to the board's own policy; the report goes with the test.</summary>
    public static ConformanceResult Judge(BoardTestContext t, TracedRun traced, string attachmentPrefix = "")
    {
        var result = Conformance(t, traced, attachmentPrefix);
        if (!result.Conforms)
            throw new ProductFailureException($"the board's call-queue trace diverges from the model ({result.Policy.Name}) at line {result.Divergence!.Line}: {result.Divergence.Reason}",
                [.. ConformanceRendering.Text(result)]);
        return result;
    }

    /// <summary>
    /// The trace judged by the board's own policy (a patch run: the policy its driver claims), its
    /// report attached (no verdict: see <see cref="Judge"/>); then judged under every other policy
    /// as well — which ones it conforms to is what a patch run reports about the driver.
    /// </summary>
    public static ConformanceResult Conformance(BoardTestContext t, TracedRun traced, string attachmentPrefix = "")
    {
        var result = traced.Check();
        t.Attach($"{attachmentPrefix}conformance.txt", string.Join("\n", ConformanceRendering.Text(result)), "the trace judged by the model");
        var all = Policy.All.Select(p => p == result.Policy ? result : traced.Check(new ConformanceOptions(p))).ToList();
        var conforming = all.Where(r => r.Conforms).Select(r => r.Policy.Name).ToList();
        t.Attach($"{attachmentPrefix}policies.txt", string.Join("\n", all.Select(r => r.Conforms
            ? $"{r.Policy.Name,-14} conforms"
            : $"{r.Policy.Name,-14} diverges at line {r.Divergence!.Line}: {r.Divergence.Reason.Split('\n')[0]}")), "the trace judged under every policy");
        t.Note($"trace {traced.TracePath}: {result.Events} events, {(result.Conforms ? "conforms" : "DIVERGES")} ({result.Policy.Name}); " +
               $"conforms to: {(conforming.Count > 0 ? string.Join(", ", conforming) : "no policy")}");
        PolicyRecords.Append(t, traced.TracePath, result, all);
        return result;
    }

    public static void RequireSucceeded(KmodRun run)
    {
        if (!run.AllSucceeded)
            throw new ProductFailureException("a hil_cq call failed", [.. run.Calls.Select(c => c.ToString())]);
    }
}
