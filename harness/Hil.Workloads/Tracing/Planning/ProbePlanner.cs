using Hil.Model.Conformance;
using Hil.Workloads.Tracing.Module;

namespace Hil.Workloads.Tracing.Planning;

/// <summary>
/// Plans the probes for one kernel from its facts and its optee.ko disassembly.
/// <list type="bullet">
/// <item>Function-entry probes read arguments from the AAPCS64 argument registers (cq in x0, w in
/// x1, sys_thread in x2), which holds at any entry whatever the compiler did inside.</item>
/// <item>Probes inside functions (woken, the wake-up targets) use the offsets and registers the
/// analysis found in this build's code.</item>
/// <item>The thread counters are read through BTF-typed arguments where the kernel's probe parser
/// takes them (Linux 6.6+), else at the offsets the code shows; plain probes carry the "optee:"
/// module prefix, BTF-typed ones cannot (the kernel rejects the prefix with typed arguments).</item>
/// </list>
/// </summary>
public static class ProbePlanner
{
    private const string Module = "optee:";

    public static ProbePlan Plan(KernelFacts facts, ObjdumpListing listing)
    {
        var code = CallQueueAnalyzer.Analyze(listing);
        var notes = new List<string>();
        foreach (var f in new[] { CallQueueAnalyzer.WaitInit, CallQueueAnalyzer.WaitForCompletion, CallQueueAnalyzer.WaitFinal })
            if (!facts.OpteeFunctions.Contains(f))
                throw new TracingException($"kernel {facts.Release}: {f} is not in /proc/kallsyms for module optee; the call queue cannot be probed");

        var btf = facts.CanUseBtfArgs && code.HasSysArgument && code.Counts;
        if (facts.CanUseBtfArgs && !btf) notes.Add("BTF arguments available but this driver has no thread counting: plain register probes only");
        var counters = code.Counts ? $" total=+{code.TotalOffset}(%x0):s32 free=+{code.FreeOffset}(%x0):s32 sysreq=+{code.SysReqOffset}(%x0):s32" : "";
        const string BtfCounters = "free=cq->free_thread_count sysreq=cq->sys_thread_req_count";

        var probes = new List<PlannedProbe>
        {
            new("wait_init", TraceKind.WaitInit, false, Choices(btf,
                $"{CallQueueAnalyzer.WaitInit} w=w sys=sys_thread total=cq->total_thread_count {BtfCounters}",
                $"{Module}{CallQueueAnalyzer.WaitInit} w=%x1{(code.HasSysArgument ? " sys=%x2:u8" : "")}{counters}")),
            // Returning from wait_init means the caller was let through (with counting: a slot was taken).
            new("admitted", TraceKind.Admitted, true, Choices(btf,
                $"{CallQueueAnalyzer.WaitInit} {BtfCounters}",
                $"{Module}{CallQueueAnalyzer.WaitInit}")),
            new("block", TraceKind.Block, false, [$"{Module}{CallQueueAnalyzer.WaitForCompletion} w=%x1"]),
            new("woken", TraceKind.Woken, false, [$"{Module}{code.Woken.Location} w=%{code.Woken.RegisterName}"]),
        };

        var sites = code.WakeUps.Where(s => facts.OpteeFunctions.Contains(s.Function)).ToList();
        foreach (var s in code.WakeUps.Except(sites))
            notes.Add($"wake-up site {s.Location} is in a function kallsyms does not list: not probed");
        for (var i = 0; i < sites.Count; i++)
            probes.Add(new PlannedProbe(sites.Count == 1 ? "complete" : $"complete{i}", TraceKind.Complete, false,
                [$"{Module}{sites[i].Location} c=%{sites[i].RegisterName}"], code.CompletionOffset));
        if (sites.Count == 0) notes.Add("no complete() of a waiter found in optee_cq_* code: wake-up targets are not traced");

        probes.Add(new PlannedProbe("final", TraceKind.Final, false, Choices(btf,
            $"{CallQueueAnalyzer.WaitFinal} w=w {BtfCounters} done=w->c.done",
            $"{Module}{CallQueueAnalyzer.WaitFinal} w=%x1 done=+{code.DoneOffset}(%x1):u32{(code.Counts ? $" free=+{code.FreeOffset}(%x0):s32 sysreq=+{code.SysReqOffset}(%x0):s32" : "")}")));

        // System sessions exist only in drivers with the sys_thread argument (Linux 6.8+).
        if (code.HasSysArgument && facts.OpteeFunctions.Contains("optee_system_session"))
            probes.Add(new PlannedProbe("sys_register", TraceKind.SysRegister, true, Choices(facts.CanUseBtfArgs,
                "optee_system_session session=session ret=$retval:s32",
                $"{Module}optee_system_session ret=$retval:s32")));
        if (code.HasSysArgument && facts.OpteeFunctions.Contains("optee_close_session_helper"))
            probes.Add(new PlannedProbe("close_begin", TraceKind.CloseBegin, false, Choices(facts.CanUseBtfArgs,
                "optee_close_session_helper session=session sys=system_thread",
                $"{Module}optee_close_session_helper session=%x1:u32 sys=%x2:u8")));

        var tracepoints = new List<PlannedTracepoint>();
        if (facts.Tracepoints.Contains(KernelFacts.InvokeBegin) && facts.Tracepoints.Contains(KernelFacts.InvokeEnd))
        {
            tracepoints.Add(new PlannedTracepoint(KernelFacts.InvokeBegin, TraceKind.SmcBegin));
            tracepoints.Add(new PlannedTracepoint(KernelFacts.InvokeEnd, TraceKind.SmcEnd));
        }
        else notes.Add("no optee_invoke_fn tracepoints: SMC entries and results are not traced");

        return new ProbePlan(facts, code, probes, tracepoints, notes);
    }

    private static IReadOnlyList<string> Choices(bool preferFirst, string typed, string plain) => preferFirst ? [typed, plain] : [plain];
}
