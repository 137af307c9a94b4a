using Hil.Boards.Failures;
using Hil.Model.Conformance;
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

    /// <summary>The trace judged by the board's own policy, its report attached (no verdict: see <see cref="Judge"/>).</summary>
    public static ConformanceResult Conformance(BoardTestContext t, TracedRun traced, string attachmentPrefix = "")
    {
        var result = traced.Check();
        t.Attach($"{attachmentPrefix}conformance.txt", string.Join("\n", ConformanceRendering.Text(result)), "the trace judged by the model");
        t.Note($"trace {traced.TracePath}: {result.Events} events, {(result.Conforms ? "conforms" : "DIVERGES")}");
        return result;
    }

    public static void RequireSucceeded(KmodRun run)
    {
        if (!run.AllSucceeded)
            throw new ProductFailureException("a hil_cq call failed", [.. run.Calls.Select(c => c.ToString())]);
    }

}
