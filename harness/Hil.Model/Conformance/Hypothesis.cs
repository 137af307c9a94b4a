using Hil.Model.Core;

namespace Hil.Model.Conformance;

/// <summary>Forward: wait_final's second complete_one, owed by a caller that had absorbed a wake-up.</summary>
internal enum TriggerKind : byte { Arrive, Wake, Requeue, Recheck, Final, Forward }

/// <summary>A critical section known to have begun (its probe fired) but not yet placed in lock order.
/// Order/Time: where it most likely ran (the probe's line, or the first line from inside it).</summary>
internal readonly record struct Pending(int Task, TriggerKind Kind, int Call, bool Sys, long Line, double Time)
{
    public long Order { get; init; } = Line;

    /// <summary>For a wait_final: the completion flag its probe read (-1: not read).</summary>
    public sbyte DoneRead { get; init; } = -1;
}

/// <summary>A counter read by a probe that the model could not yet explain.</summary>
internal readonly record struct CounterRead(long Line, int Task, double Time, int Free, int SysReq);

internal sealed class TaskInfo
{
    public int Call = -1;
    public readonly Queue<int> ExpectComplete = new();
    /// <summary>Wake-ups handed out so far by the wait_final being applied (it may owe a forward).</summary>
    public int FinalWakes;
    public bool CloseSys;
    public string? CloseSession;

    public TaskInfo Clone()
    {
        var t = new TaskInfo { Call = Call, CloseSys = CloseSys, CloseSession = CloseSession, FinalWakes = FinalWakes };
        foreach (var x in ExpectComplete) t.ExpectComplete.Enqueue(x);
        return t;
    }

    public bool Idle => Call < 0 && ExpectComplete.Count == 0 && !CloseSys && FinalWakes == 0;
}

/// <summary>What one history counted (kept per history: a backtrack must not count twice).</summary>
internal sealed class HistoryStats
{
    public long Calls, SysCalls, Blocks, Refusals, Wakeups, Absorbed, Lost, Reorderings, CounterMismatches, IgnoredSmc;
    public int MaxIn, MaxNormal, MaxSys, MaxNormalWhileSys = -1;
    public HistoryStats Clone() => (HistoryStats)MemberwiseClone();
}

/// <summary>One possible history of the driver given the lines read so far.</summary>
internal sealed class Hypothesis
{
    public HistoryStats Stats = new();
    public DriverState D = null!;
    public Dictionary<int, TaskInfo> Tasks = [];
    public Dictionary<ulong, int> CallOfWaiter = [];
    public ulong[] WaiterOf = new ulong[8];
    public long[] LineOf = new long[8];
    public int[] TaskOf = new int[8];
    public Stack<int> FreeIds = new();
    public int NextId;
    public List<Pending> Pending = [];
    public Dictionary<string, int> Sessions = [];
    public string? FailReason;
    /// <summary>(free, sys_req) after each of the last critical sections: what an unlocked read may still see.</summary>
    public (int Free, int SysReq)[] Recent = new (int, int)[4];
    public int RecentCount;

    public void NoteCounters()
    {
        Recent[RecentCount++ % Recent.Length] = (D.Free, D.SysReqCount);
    }

    /// <summary>
    /// A counter read before the lock (an entry probe) sees the value after some recent critical
    /// section, not necessarily the last one: another CPU's store may not be visible yet.
    /// </summary>
    /// <summary>
    /// Counter reads (free, sys_req) no recent state explains. The probe reads them before the lock,
    /// and a vCPU can stall between the line's timestamp and the read, so the value may be newer:
    /// each must then be the state after a later critical section of another task within the race
    /// window, or this history is dropped (see <see cref="CheckRead"/>).
    /// </summary>
    public List<CounterRead>? OpenReads;

    /// <summary>Compares a line's counters with the model: explained now (or by a recent state), or kept open.</summary>
    /// <param name="afterOwnLock">Read after the task's own critical section (a return probe): it
    /// sees its own store, so an older state cannot explain it.</param>
    public void CheckRead(long line, int task, double time, int free, int sysReq, bool afterOwnLock = false)
    {
        if (free < 0 && sysReq < 0) return;
        if (afterOwnLock ? (free < 0 || free == D.Free) && (sysReq < 0 || sysReq == D.SysReqCount) : CountersPlausible(free, sysReq)) return;
        Stats.CounterMismatches++;
        (OpenReads ??= []).Add(new CounterRead(line, task, time, free, sysReq));
    }

    /// <summary>After a critical section of <paramref name="byTask"/>: the reads of other tasks it explains are closed.</summary>
    public void ResolveReads(int byTask)
    {
        if (OpenReads is not { Count: > 0 }) return;
        OpenReads.RemoveAll(r => r.Task != byTask && (r.Free < 0 || r.Free == D.Free) && (r.SysReq < 0 || r.SysReq == D.SysReqCount));
    }

    /// <summary>The first open read older than <paramref name="limit"/> (or any, at the end), as a reason; null if none.</summary>
    public string? UnexplainedRead(double limit)
    {
        if (OpenReads is not { Count: > 0 }) return null;
        foreach (var r in OpenReads)
            if (r.Time < limit)
                return $"the counters read at line {r.Line} ({(r.Free >= 0 ? $"free={r.Free} " : "")}{(r.SysReq >= 0 ? $"sysreq={r.SysReq}" : "")}) match no state of the model from shortly before that line to the end of the race window (now free={D.Free}, sys_req={D.SysReqCount})";
        return null;
    }

    public bool CountersPlausible(int free, int sysReq)
    {
        bool Match((int F, int S) v) => (free < 0 || v.F == free) && (sysReq < 0 || v.S == sysReq);
        if (Match((D.Free, D.SysReqCount))) return true;
        for (var i = 0; i < Math.Min(RecentCount, Recent.Length); i++) if (Match(Recent[i])) return true;
        return false;
    }

    public Hypothesis Clone()
    {
        var h = new Hypothesis
        {
            D = D.Clone(),
            CallOfWaiter = new Dictionary<ulong, int>(CallOfWaiter),
            WaiterOf = (ulong[])WaiterOf.Clone(),
            LineOf = (long[])LineOf.Clone(),
            TaskOf = (int[])TaskOf.Clone(),
            FreeIds = new Stack<int>(FreeIds.Reverse()),
            NextId = NextId,
            Pending = [.. Pending],
            Sessions = new Dictionary<string, int>(Sessions),
            Recent = ((int, int)[])Recent.Clone(),
            OpenReads = OpenReads is null ? null : [.. OpenReads],
            RecentCount = RecentCount,
            Stats = Stats.Clone(),
        };
        foreach (var (k, v) in Tasks) h.Tasks[k] = v.Clone();
        return h;
    }

    public TaskInfo Task(int task)
    {
        if (!Tasks.TryGetValue(task, out var t)) Tasks[task] = t = new TaskInfo();
        return t;
    }

    public int Allocate(ulong w, long line, int task)
    {
        var id = FreeIds.Count > 0 ? FreeIds.Pop() : NextId++;
        D.EnsureCall(id);
        if (id >= WaiterOf.Length)
        {
            Array.Resize(ref WaiterOf, Math.Max(id + 1, WaiterOf.Length * 2));
            Array.Resize(ref LineOf, WaiterOf.Length);
            Array.Resize(ref TaskOf, WaiterOf.Length);
        }
        WaiterOf[id] = w;
        LineOf[id] = line;
        TaskOf[id] = task;
        CallOfWaiter[w] = id;
        return id;
    }

    public void Release(int call)
    {
        CallOfWaiter.Remove(WaiterOf[call]);
        D.Forget(call);
        FreeIds.Push(call);
    }

    public string Name(int call) => call < 0 ? "?" : $"w={WaiterOf[call]:x}(line {LineOf[call]})";

    public int PendingIndexOf(int task)
    {
        for (var i = 0; i < Pending.Count; i++) if (Pending[i].Task == task) return i;
        return -1;
    }

    /// <summary>
    /// The task's first pending step that must run before a line of <paramref name="line"/>'s kind,
    /// or -1. Two steps may wait past the task's next line: a forward owed by its wait_final, at a
    /// complete line while an earlier wake-up of the same wait_final is still to be shown (that line
    /// comes from the first complete_one); and the return from wait_for_completion of a caller whose
    /// wake-up came before it slept, at its block line (that probe fires before the wait).
    /// </summary>
    public int DueIndexOf(int task, TraceKind line)
    {
        var i = PendingIndexOf(task);
        if (i < 0) return i;
        var k = Pending[i].Kind;
        if (k == TriggerKind.Forward && line == TraceKind.Complete && Task(task).ExpectComplete.Count > 0) return -1;
        if (k == TriggerKind.Wake && line == TraceKind.Block) return -1;
        return i;
    }

    /// <summary>Canonical key, for merging hypotheses that reached the same point.</summary>
    public string Key()
    {
        var sb = new System.Text.StringBuilder();
        sb.Append(D.Free).Append(',').Append(D.SysReqCount).Append(',').Append(D.SecureFree).Append('|');
        foreach (var c in D.List) sb.Append(c).Append(':').Append((int)D.Phase(c)).Append(D.IsDone(c) ? '*' : ' ').Append(D.IsSys(c) ? 's' : 'n').Append(';');
        sb.Append('|');
        foreach (var p in Pending) sb.Append(p.Task).Append('/').Append((int)p.Kind).Append('/').Append(p.Call).Append(';');
        sb.Append('|');
        foreach (var (k, t) in Tasks.OrderBy(x => x.Key))
            if (!t.Idle) sb.Append(k).Append('=').Append(t.Call).Append(string.Join(".", t.ExpectComplete)).Append(t.CloseSys ? "c" : "").Append('#').Append(t.FinalWakes).Append(';');
        if (OpenReads is { Count: > 0 }) foreach (var r in OpenReads) sb.Append('r').Append(r.Line);
        return sb.ToString();
    }
}
