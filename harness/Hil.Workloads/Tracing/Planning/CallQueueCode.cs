using Hil.Workloads.Tracing.Module;

namespace Hil.Workloads.Tracing.Planning;

/// <summary>A probe site inside a function: func+offset, and the register to read there.</summary>
public sealed record CodeSite(string Function, int Offset, int Register, string Evidence)
{
    public string Location => $"{Function}+0x{Offset:x}";
    public string RegisterName => $"x{Register}";
}

/// <summary>
/// What the disassembly of one optee.ko says about its call queue: where a sleeping caller wakes
/// up, where wake-ups are handed out, and the field offsets the probes need. Derived per build,
/// never assumed: the same source compiles to different offsets and registers per kernel.
/// </summary>
public sealed record CallQueueCode
{
    /// <summary>Offset of the completion in struct optee_call_waiter (the argument of wait_for_completion is w + this).</summary>
    public required int CompletionOffset { get; init; }
    /// <summary>Offset of the completion's done counter in the waiter (reinit_completion clears it).</summary>
    public required int DoneOffset { get; init; }
    /// <summary>Just after wait_for_completion returns in optee_cq_wait_for_completion, and the register holding w.</summary>
    public required CodeSite Woken { get; init; }
    /// <summary>
    /// Where the first wake-up an ending caller hands out returns (the instruction after its
    /// bl complete, in optee_cq_complete_one or else inlined in optee_cq_wait_final): the queue's
    /// mutex is still held there, and the woken caller may consume its wake-up before the ender
    /// scans the list again (the requeue rule's race window). Null when no such call is found.
    /// </summary>
    public CodeSite? FirstWakeUpReturn { get; init; }
    /// <summary>Each complete() call whose argument is a waiter's completion; the register is x0 at the call (w = x0 - CompletionOffset).</summary>
    public required IReadOnlyList<CodeSite> WakeUps { get; init; }
    /// <summary>optee_cq_wait_init takes a third argument (bool sys_thread, Linux 6.8+), read before it is overwritten.</summary>
    public required bool HasSysArgument { get; init; }
    /// <summary>Counter offsets in struct optee_call_queue, when this driver counts threads (null: it does not).</summary>
    public int? TotalOffset { get; init; }
    public int? FreeOffset { get; init; }
    public int? SysReqOffset { get; init; }

    public bool Counts => FreeOffset is not null;

    public IEnumerable<string> Describe()
    {
        yield return $"completion at +0x{CompletionOffset:x} in struct optee_call_waiter, done at +0x{DoneOffset:x}";
        yield return $"woken: {Woken.Location}, w in {Woken.RegisterName} ({Woken.Evidence})";
        foreach (var s in WakeUps) yield return $"wake-up: {s.Location}, &w->c in {s.RegisterName} ({s.Evidence})";
        yield return HasSysArgument ? "optee_cq_wait_init takes sys_thread (x2)" : "optee_cq_wait_init has no sys_thread argument";
        yield return Counts
            ? $"thread counters in struct optee_call_queue: total +{TotalOffset}, free +{FreeOffset}, sys_thread_req_count +{SysReqOffset}"
            : "no thread counting in this driver";
    }
}

/// <summary>Reads <see cref="CallQueueCode"/> out of a module's disassembly.</summary>
public static class CallQueueAnalyzer
{
    public const string WaitInit = "optee_cq_wait_init";
    public const string WaitForCompletion = "optee_cq_wait_for_completion";
    public const string WaitFinal = "optee_cq_wait_final";
    public const string CompleteOne = "optee_cq_complete_one";
    /// <summary>Call-queue helpers are named optee_cq_*.</summary>
    public const string Prefix = "optee_cq_";
    /// <summary>
    /// Notification entries share the waiter's layout (a list node, then a completion), so their
    /// complete() calls look like wake-ups; notif.c names every function optee_notif_*.
    /// </summary>
    public const string NotificationPrefix = "optee_notif_";

    public static CallQueueCode Analyze(ObjdumpListing listing)
    {
        var wfc = listing.Require(WaitForCompletion);
        // optee_cq_wait_for_completion(cq, w): its first call sleeps on &w->c.
        var sleep = IndexOfCall(wfc, "wait_for_completion")
            ?? throw new DisassemblyException($"{listing.Source}: {WaitForCompletion} never calls wait_for_completion");
        var before = RegisterValues.Run(wfc, sleep);
        var arg = before[0] is { Base: "arg1" } a ? a
            : throw new DisassemblyException($"{listing.Source}: {WaitForCompletion}+0x{wfc.Instructions[sleep].Offset:x}: the argument of wait_for_completion is {Show(before[0])}, not w (x1) plus an offset");
        var completion = (int)arg.Offset;

        var after = RegisterValues.Run(wfc, sleep + 1, before, sleep);
        var w = SymbolicValue.Argument(1);
        if (sleep + 1 >= wfc.Instructions.Count) throw new DisassemblyException($"{listing.Source}: {WaitForCompletion} ends at its wait_for_completion call");
        var wokenReg = after.CalleeSavedHolding(w)
            ?? throw new DisassemblyException($"{listing.Source}: after wait_for_completion returns in {WaitForCompletion}, no callee-saved register holds w");
        var woken = new CodeSite(WaitForCompletion, wfc.Instructions[sleep + 1].Offset, wokenReg,
            $"instruction after bl wait_for_completion; x{wokenReg} = x1 at entry");

        var done = DoneOffset(wfc, sleep + 1, after, w) ?? completion;

        var wakeUps = new List<CodeSite>();
        // Every function, not only optee_cq_*: the wake-up helper is static, and a patch that makes
        // its caller smaller gets it inlined there (v9 inlines it into optee_close_session_helper);
        // a wake-up site missed is a wake-up the checker never sees.
        foreach (var f in listing.Functions.Where(f => !f.Name.StartsWith(NotificationPrefix, StringComparison.Ordinal)).OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            for (var i = 0; i < f.Instructions.Count; i++)
            {
                if (f.Instructions[i].CallTarget != "complete") continue;
                var (value, how) = ArgumentBefore(f, i, 0);
                if (value is { } v && v.Offset == completion)
                    wakeUps.Add(new CodeSite(f.Name, f.Instructions[i].Offset, 0, $"bl complete with x0 = {how} + 0x{completion:x} (&w->c)"));
            }
        }

        var firstReturn = FirstWakeUpReturn(listing, wakeUps);
        var init = listing.Require(WaitInit);
        var counters = Counters(listing);
        return new CallQueueCode
        {
            CompletionOffset = completion,
            DoneOffset = done,
            Woken = woken,
            FirstWakeUpReturn = firstReturn,
            WakeUps = wakeUps,
            HasSysArgument = ReadsBeforeWriting(init, 2),
            TotalOffset = counters?.Total,
            FreeOffset = counters?.Free,
            SysReqOffset = counters?.SysReq,
        };
    }

    private static CodeSite? FirstWakeUpReturn(ObjdumpListing listing, IReadOnlyList<CodeSite> wakeUps)
    {
        var site = wakeUps.FirstOrDefault(s => s.Function == CompleteOne)
                   ?? wakeUps.Where(s => s.Function == WaitFinal).MinBy(s => s.Offset);
        if (site is null) return null;
        var f = listing.Require(site.Function);
        var i = f.IndexAtOffset(site.Offset);
        // A tail call (b complete) returns to the caller, not here: no site in this function.
        if (i < 0 || f.Instructions[i].Mnemonic != "bl" || i + 1 >= f.Instructions.Count) return null;
        return new CodeSite(site.Function, f.Instructions[i + 1].Offset, 0, $"instruction after the bl complete at {site.Location} (the queue's mutex held)");
    }

    private static string Show(SymbolicValue? v) => v?.ToString() ?? "unknown";

    private static int? IndexOfCall(DisassembledFunction f, string callee)
    {
        for (var i = 0; i < f.Instructions.Count; i++) if (f.Instructions[i].CallTarget == callee) return i;
        return null;
    }

    /// <summary>reinit_completion(&w->c) right after waking stores zero into done: "str wzr, [xW, #D]".</summary>
    private static int? DoneOffset(DisassembledFunction f, int from, RegisterValues regs, SymbolicValue w)
    {
        for (var i = from; i < f.Instructions.Count; i++)
        {
            var ins = f.Instructions[i];
            if (ins.Mnemonic == "str" && ins.Args is [var src, var mem] && src == "wzr"
                && RegisterValues.Memory(mem) is { } m && regs[m.Base] == w)
                return (int)m.Offset;
            regs.Step(ins);
        }
        return null;
    }

    /// <summary>
    /// Follows register <paramref name="reg"/> backwards from instruction <paramref name="at"/>
    /// through moves to the add that formed it: (register + offset), with the base register named.
    /// </summary>
    private static (SymbolicValue? Value, string How) ArgumentBefore(DisassembledFunction f, int at, int reg)
    {
        var path = new List<string>();
        for (var i = at - 1; i >= 0; i--)
        {
            var ins = f.Instructions[i];
            if (ins.Mnemonic is "bl" or "blr")
            {
                if (reg <= 18 || reg == 30) return (null, "clobbered by a call");
                continue;
            }
            if (!RegisterValues.Written(ins).Contains(reg)) continue;
            var a = ins.Args;
            if (ins.Mnemonic == "mov" && a.Count == 2 && RegisterValues.Register(a[1]) is { Wide: true } src)
            {
                path.Add($"x{reg}");
                reg = src.Number;
                continue;
            }
            if (ins.Mnemonic == "add" && a.Count == 3 && RegisterValues.Register(a[1]) is { Wide: true } b && RegisterValues.Immediate(a[2]) is { } imm)
                return (new SymbolicValue($"x{b.Number}", imm), $"x{b.Number}@+0x{ins.Offset:x}");
            return (null, $"x{reg} from {ins}");
        }
        return (null, "not set in the function");
    }

    /// <summary>Whether a function reads argument register x<paramref name="reg"/> before anything overwrites it.</summary>
    private static bool ReadsBeforeWriting(DisassembledFunction f, int reg)
    {
        foreach (var ins in f.Instructions)
        {
            if (RegisterValues.Reads(ins, reg)) return true;
            if (ins.Mnemonic is "bl" or "blr" || RegisterValues.Written(ins).Contains(reg)) return false;
        }
        return false;
    }

    private sealed record CounterOffsets(int Total, int Free, int SysReq);

    /// <summary>
    /// Thread counters of struct optee_call_queue from the code that uses them (cq is the first
    /// argument of every optee_cq_* function): wait_final increments free in place; wait_init tests
    /// total for zero with cbz/cbnz and compares sys_thread_req_count with 0. Null when the driver
    /// does not count (before Linux 6.8) or the pattern is not there.
    /// </summary>
    private static CounterOffsets? Counters(ObjdumpListing listing)
    {
        var cq = SymbolicValue.Argument(0);
        int? free = null;
        var fin = listing.Require(WaitFinal);
        var regs = RegisterValues.AtEntry();
        for (var i = 0; i + 2 < fin.Instructions.Count && free is null; i++)
        {
            var (ld, inc, st) = (fin.Instructions[i], fin.Instructions[i + 1], fin.Instructions[i + 2]);
            if (ld.Mnemonic == "ldr" && inc.Mnemonic == "add" && st.Mnemonic == "str"
                && ld.Args is [var r, var m] && RegisterValues.Memory(m) is { } mem && regs[mem.Base] == cq
                && inc.Args is [var r1, var r2, var one] && r1 == r && r2 == r && RegisterValues.Immediate(one) == 1
                && st.Args is [var r3, var m2] && r3 == r && m2 == m)
                free = (int)mem.Offset;
            regs.Step(ld);
        }
        if (free is null) return null;

        int? total = null, sysreq = null;
        var init = listing.Require(WaitInit);
        regs = RegisterValues.AtEntry();
        for (var i = 0; i + 1 < init.Instructions.Count; i++)
        {
            var (ld, next) = (init.Instructions[i], init.Instructions[i + 1]);
            if (ld.Mnemonic == "ldr" && ld.Args is [var r, var m] && r.StartsWith('w') && RegisterValues.Memory(m) is { } mem && regs[mem.Base] == cq && mem.Offset != free)
            {
                if (next.Mnemonic is "cbz" or "cbnz" && next.Args[0] == r) total ??= (int)mem.Offset;
                else if (next.Mnemonic == "cmp" && next.Args is [var c, var zero] && c == r && RegisterValues.Immediate(zero) == 0) sysreq ??= (int)mem.Offset;
            }
            regs.Step(ld);
        }
        return total is { } t && sysreq is { } s && t != s ? new CounterOffsets(t, free.Value, s) : null;
    }
}
