using System.Diagnostics;
using Hil.Model.Core;

namespace Hil.Model.Conformance;

/// <summary>
/// Replays a board trace against the model and reports the first event the model forbids.
///
/// Probes that fire on entry of wait_init, wait_final and after wait_for_completion returns run
/// before the caller takes the call-queue lock, so the order of their lines is not always the
/// order of the critical sections. Such an event is a *trigger*: it stays pending until the same
/// task's next line, and the checker keeps every order of pending triggers that is still possible
/// (a small set of hypotheses; usually one). Lines that come from inside the lock or after the
/// decision (complete targets, wait_init returning, going to sleep, SMC results) are
/// *observations* that each hypothesis must explain. The trace diverges when no hypothesis is left.
///
/// A trace may start while calls are in flight: a waiter first seen in a line other than
/// wait_init makes the check start over with that waiter placed at the head of the list
/// (running, or asleep when it is first seen waking). The source is therefore opened again.
/// </summary>
public static class ConformanceChecker
{
    public const int MaxRestarts = 64;

    public static ConformanceResult Check(Func<Stream> open, string source, ConformanceOptions? options = null)
    {
        options ??= new ConformanceOptions();
        var seeds = new SeedPlan([], null);
        var sw = Stopwatch.StartNew();
        for (var attempt = 0; ; attempt++)
        {
            using var reader = new TraceReader(open(), source);
            try
            {
                return new CheckRun(reader, source, options, seeds, sw).Execute();
            }
            catch (RestartException rx) when (attempt < MaxRestarts)
            {
                seeds = rx.Plan;
            }
        }
    }

    /// <summary>The same check over an in-memory trace (tests, small tools).</summary>
    public static ConformanceResult CheckText(string jsonLines, string source = "(trace)", ConformanceOptions? options = null) =>
        Check(() => new MemoryStream(System.Text.Encoding.UTF8.GetBytes(jsonLines)), source, options);
}

internal enum SeedKind { Running, Asleep }

internal sealed record SeedPlan(IReadOnlyList<(ulong Waiter, SeedKind Kind)> Waiters, int? SysReq)
{
    public SeedPlan With(ulong w, SeedKind kind)
    {
        var list = Waiters.Where(x => x.Waiter != w).ToList();
        list.Add((w, kind));
        return this with { Waiters = list };
    }
}

internal sealed class RestartException(SeedPlan plan) : Exception("restart")
{
    public SeedPlan Plan { get; } = plan;
}

internal enum TriggerKind : byte { Arrive, Wake, Final, Smc }

internal readonly record struct Pending(int Task, TriggerKind Kind, int Call, bool Sys, long Line);

internal sealed class TaskInfo
{
    public int Call = -1;
    public readonly Queue<int> ExpectComplete = new();
    public bool CloseSys;
    public string? CloseSession;

    public TaskInfo Clone()
    {
        var t = new TaskInfo { Call = Call, CloseSys = CloseSys, CloseSession = CloseSession };
        foreach (var x in ExpectComplete) t.ExpectComplete.Enqueue(x);
        return t;
    }

    public bool Idle => Call < 0 && ExpectComplete.Count == 0 && !CloseSys;
}

/// <summary>One possible history of the driver given the lines read so far.</summary>
internal sealed class Hypothesis
{
    public DriverState D = null!;
    public Dictionary<int, TaskInfo> Tasks = [];
    public Dictionary<ulong, int> CallOfWaiter = [];
    public ulong[] WaiterOf = new ulong[8];
    public long[] LineOf = new long[8];
    public Stack<int> FreeIds = new();
    public int NextId;
    public List<Pending> Pending = [];
    public Dictionary<string, int> Sessions = [];
    public string? FailReason;

    public Hypothesis Clone()
    {
        var h = new Hypothesis
        {
            D = D.Clone(),
            CallOfWaiter = new Dictionary<ulong, int>(CallOfWaiter),
            WaiterOf = (ulong[])WaiterOf.Clone(),
            LineOf = (long[])LineOf.Clone(),
            FreeIds = new Stack<int>(FreeIds.Reverse()),
            NextId = NextId,
            Pending = [.. Pending],
            Sessions = new Dictionary<string, int>(Sessions),
        };
        foreach (var (k, v) in Tasks) h.Tasks[k] = v.Clone();
        return h;
    }

    public TaskInfo Task(int task)
    {
        if (!Tasks.TryGetValue(task, out var t)) Tasks[task] = t = new TaskInfo();
        return t;
    }

    public int Allocate(ulong w, long line)
    {
        var id = FreeIds.Count > 0 ? FreeIds.Pop() : NextId++;
        D.EnsureCall(id);
        if (id >= WaiterOf.Length)
        {
            Array.Resize(ref WaiterOf, Math.Max(id + 1, WaiterOf.Length * 2));
            Array.Resize(ref LineOf, WaiterOf.Length);
        }
        WaiterOf[id] = w;
        LineOf[id] = line;
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
            if (!t.Idle) sb.Append(k).Append('=').Append(t.Call).Append(string.Join(".", t.ExpectComplete)).Append(t.CloseSys ? "c" : "").Append(';');
        return sb.ToString();
    }
}

internal sealed class CheckRun(TraceReader reader, string source, ConformanceOptions options, SeedPlan seeds, Stopwatch sw)
{
    private List<Hypothesis> _hyps = [];
    private readonly List<Effect> _fx = [];
    private readonly TraceEvent[] _recent = new TraceEvent[8];   // formatted only when a divergence is reported
    private long _recentCount;
    private int _seenMask;   // bit per TraceKind met so far
    private IReadOnlySet<TraceKind>? _declared;
    private bool _registerSeen;
    private int _maxHyps = 1;
    private readonly List<string> _notes = [];
    private long _events, _calls, _sysCalls, _blocks, _refusals, _wakeups, _absorbed, _ignoredSmc, _reorderings;
    private readonly HashSet<ulong> _introduced = [];
    private int _maxIn, _maxNormal, _maxSys, _maxNormalWhileSys = -1;
    private bool _pruned;
    private Policy _policy = null!;
    private int _threads, _total;

    public ConformanceResult Execute()
    {
        var e = new TraceEvent();
        var any = reader.Next(ref e);
        Configure(any ? e : (TraceEvent?)null);
        if (any)
        {
            do
            {
                _events++;
                if ((_events & 0xFFFF) == 0) options.Progress?.Invoke(_events);
                Remember(e);
                var div = Process(in e);
                if (div is not null) return Result(false, div);
            } while (reader.Next(ref e));
        }
        var end = Finish();
        return Result(end is null, end);
    }

    private void Configure(TraceEvent? first)
    {
        var h = reader.Header;
        _declared = h?.Probes;
        var policyName = options.Policy?.Name ?? h?.Policy;
        _policy = options.Policy ?? (policyName is null ? null : Policy.Find(policyName))
            ?? throw new TraceFormatException(source, 1, "policy", policyName is null
                ? $"unknown: put \"policy\" in the header line or pass --policy ({Policy.Names})"
                : $"unknown policy '{policyName}'; expected one of {Policy.Names}");
        _threads = options.Threads ?? h?.Threads ?? (first is { Total: > 0 } f ? f.Total : 0);
        if (_threads <= 0)
            throw new TraceFormatException(source, 1, "threads", "unknown: put \"threads\" in the header line or pass --threads");
        // The header's count is the board driver's; a policy forced from outside brings its own rule.
        _total = options.DriverThreads ?? (options.Policy is null ? h?.DriverThreads : null) ?? _policy.DriverTotalFor(_threads);
        var root = new Hypothesis { D = new DriverState(_policy, _threads, _total) };
        root.D.SeedSystemSessions(seeds.SysReq ?? h?.SysReq ?? 0);
        foreach (var (w, kind) in seeds.Waiters)
        {
            _introduced.Add(w);
            var call = root.Allocate(w, 0);
            root.D.Seed(call, false, kind == SeedKind.Running ? CallPhase.InSecure
                : _total > 0 ? CallPhase.QueuedAsleep : CallPhase.RefusedAsleep);
        }
        if (seeds.Waiters.Count > 0)
            _notes.Add($"{seeds.Waiters.Count} call(s) were already in flight when the trace began; placed at the head of the list");
        if (seeds.SysReq is { } sr && h?.SysReq is null)
            _notes.Add($"{sr} system session(s) were registered before the trace began (from the first counters)");
        _hyps = [root];
    }

    private bool Probed(TraceKind k) => _declared?.Contains(k) ?? (_seenMask & (1 << (int)k)) != 0;

    private void Remember(in TraceEvent e)
    {
        _seenMask |= 1 << (int)e.Kind;
        _recent[_recentCount++ % _recent.Length] = e;
    }

    private string Describe(in TraceEvent e)
    {
        var s = $"line {e.Line} t={e.Time:0.000000} {reader.TaskName(e.Task)} {TraceReader.Name(e.Kind)}";
        if (e.HasWaiter) s += $" w={e.Waiter:x}";
        if (e.Sys >= 0) s += $" sys={e.Sys}";
        if (e.Free >= 0) s += $" free={e.Free}";
        if (e.SysReq >= 0) s += $" sysreq={e.SysReq}";
        if (e.Done >= 0) s += $" done={e.Done}";
        if (e.Kind == TraceKind.SmcBegin) s += $" {e.Smc}";
        if (e.Kind == TraceKind.SmcEnd) s += $" {e.Result}";
        return s;
    }

    // ---- one line -----------------------------------------------------------------------------

    private Divergence? Process(in TraceEvent e)
    {
        if (e.Kind == TraceKind.Mark) return null;
        if (e.Kind == TraceKind.WaitInit) _introduced.Add(e.Waiter);
        var next = new List<Hypothesis>(_hyps.Count);
        string? reason = null;
        var canonicalFailed = false;
        foreach (var h in _hyps)
        {
            foreach (var b in Expand(h, e.Task, OthersMayMatter(e)))
            {
                if (b.FailReason is null) Handle(b, in e);
                if (b.FailReason is null) next.Add(b);
                else
                {
                    reason ??= b.FailReason;
                    if (next.Count == 0) canonicalFailed = true;
                }
            }
        }
        if (next.Count > 0 && canonicalFailed) _reorderings++;
        if (next.Count == 0)
        {
            RestartIfWaitersPredateTheTrace();
            var canonical = _hyps[0];
            return new Divergence(e.Line, e.Time, reader.TaskName(e.Task), Describe(e), reason ?? "no history of the model explains this line",
                canonical.D.Describe(canonical.Name), RecentBefore());
        }
        _hyps = Merge(next);
        Observe(_hyps[0]);
        return null;
    }

    /// <summary>
    /// Before calling a divergence, read on: a waiter that shows up later without a wait_init was
    /// in flight from the start, and the check starts over with it in place.
    /// </summary>
    private void RestartIfWaitersPredateTheTrace()
    {
        var plan = seeds;
        var e = new TraceEvent();
        while (reader.Next(ref e))
        {
            if (!e.HasWaiter || e.Kind == TraceKind.Header) continue;
            if (e.Kind == TraceKind.WaitInit) { _introduced.Add(e.Waiter); continue; }
            if (_introduced.Contains(e.Waiter) || plan.Waiters.Any(x => x.Waiter == e.Waiter)) continue;
            plan = plan.With(e.Waiter, e.Kind is TraceKind.Woken or TraceKind.Block ? SeedKind.Asleep : SeedKind.Running);
            _introduced.Add(e.Waiter);
        }
        if (plan != seeds) throw new RestartException(plan);
    }

    /// <summary>Counters and completion flags read before the lock may reflect other tasks' pending critical sections.</summary>
    private static bool OthersMayMatter(in TraceEvent e) =>
        e.Free >= 0 || e.SysReq >= 0 || e.Done >= 0 || e.Kind is TraceKind.Complete or TraceKind.Woken;

    /// <summary>
    /// The hypotheses that follow from applying this task's pending trigger (and, where the line
    /// could depend on them, any ordered subset of other tasks' pending triggers before it).
    /// The first one keeps line order: probe order taken as lock order.
    /// </summary>
    private IEnumerable<Hypothesis> Expand(Hypothesis h, int task, bool others)
    {
        var own = h.PendingIndexOf(task);
        var otherCount = h.Pending.Count - (own >= 0 ? 1 : 0);
        if (own < 0 && (!others || otherCount == 0)) { yield return h; yield break; }
        if (otherCount == 0)
        {
            ApplyAt(h, own);
            yield return h;
            yield break;
        }
        var otherIdx = Enumerable.Range(0, h.Pending.Count).Where(i => i != own).ToList();
        // Line order first: the others probed before this task's trigger run before it, the rest stay pending.
        var ownLine = own >= 0 ? h.Pending[own].Line : long.MaxValue;
        var lineOrder = otherIdx.Where(i => h.Pending[i].Line < ownLine).ToList();
        foreach (var order in OrderedSubsets(otherIdx).Where(o => !o.SequenceEqual(lineOrder)).Prepend(lineOrder))
        {
            var b = h.Clone();
            var chosen = order.Select(i => b.Pending[i]).ToList();
            var ownP = own >= 0 ? b.Pending[own] : (Pending?)null;
            foreach (var p in chosen)
            {
                if (b.FailReason is not null) break;
                b.Pending.Remove(p);
                Apply(b, p);
            }
            if (b.FailReason is null && ownP is { } op)
            {
                b.Pending.Remove(op);
                Apply(b, op);
            }
            yield return b;
        }
    }

    private static IEnumerable<List<int>> OrderedSubsets(List<int> items)
    {
        yield return [.. items];
        var all = new List<List<int>>();
        void Rec(List<int> prefix, List<int> rest)
        {
            if (prefix.Count < items.Count) all.Add([.. prefix]);
            foreach (var x in rest)
            {
                prefix.Add(x);
                Rec(prefix, rest.Where(y => y != x).ToList());
                prefix.RemoveAt(prefix.Count - 1);
            }
        }
        Rec([], items);
        foreach (var o in all.Where(o => !o.SequenceEqual(items))) yield return o;
    }

    private void ApplyAt(Hypothesis h, int index)
    {
        var p = h.Pending[index];
        h.Pending.RemoveAt(index);
        Apply(h, p);
    }

    private List<Hypothesis> Merge(List<Hypothesis> hyps)
    {
        if (hyps.Count == 1) return hyps;
        var seen = new HashSet<string>();
        var merged = hyps.Where(h => seen.Add(h.Key())).ToList();
        if (merged.Count > options.MaxHypotheses)
        {
            if (!_pruned) _notes.Add($"more than {options.MaxHypotheses} orderings of racing probes were possible at once; kept the first {options.MaxHypotheses}");
            _pruned = true;
            merged = merged.Take(options.MaxHypotheses).ToList();
        }
        _maxHyps = Math.Max(_maxHyps, merged.Count);
        return merged;
    }

    private void Fail(Hypothesis h, string reason) => h.FailReason ??= reason;

    // ---- applying a trigger (one critical section) -----------------------------------------------

    private void Apply(Hypothesis h, Pending p)
    {
        var d = h.D;
        _fx.Clear();
        try
        {
            switch (p.Kind)
            {
                case TriggerKind.Arrive:
                    d.Arrive(p.Call, p.Sys, _fx);
                    break;
                case TriggerKind.Wake:
                    if (!(d.Phase(p.Call).IsAsleep() && d.IsDone(p.Call)))
                    {
                        Fail(h, d.Phase(p.Call).IsAsleep()
                            ? $"no wake-up was delivered to {h.Name(p.Call)} (its completion is not done: {WhoGotIt(h)}), yet the trace shows it waking"
                            : $"{h.Name(p.Call)} is {d.Phase(p.Call).Label()}, not asleep, yet the trace shows it waking");
                        return;
                    }
                    d.Wake(p.Call, _fx);
                    break;
                case TriggerKind.Smc:
                    d.Smc(p.Call, _fx);
                    break;
                case TriggerKind.Final:
                    if (d.Phase(p.Call) == CallPhase.Admitted) d.Smc(p.Call, _fx);   // no SMC probes: the call ran
                    if (d.Phase(p.Call) == CallPhase.RefusedAsleep)
                    {
                        Fail(h, $"{h.Name(p.Call)} was refused a secure thread and never retried, yet it ends");
                        return;
                    }
                    d.Final(p.Call, _fx);
                    var t = h.Task(p.Task);
                    if (t.CloseSys)
                    {
                        var session = t.CloseSession is { } s && h.Sessions.TryGetValue(s, out var sid) ? sid
                            : h.Sessions.Count > 0 ? h.Sessions.Values.First() : -1;
                        if (session >= 0)
                        {
                            d.UnregisterSystem(session, _fx);
                            h.Sessions.Remove(h.Sessions.First(kv => kv.Value == session).Key);
                        }
                        t.CloseSys = false;
                    }
                    if (Probed(TraceKind.Complete))
                        foreach (var fx in _fx)
                            if (fx.Kind is EffectKind.Woken or EffectKind.Absorbed) t.ExpectComplete.Enqueue(fx.Subject);
                    foreach (var fx in _fx)
                    {
                        if (fx.Kind is EffectKind.Woken or EffectKind.Absorbed) _wakeups++;
                        if (fx.Kind is EffectKind.Absorbed) _absorbed++;
                    }
                    t.Call = -1;
                    h.Release(p.Call);
                    if (t.Idle) h.Tasks.Remove(p.Task);
                    break;
            }
        }
        catch (ModelStepException ex)
        {
            Fail(h, ex.Message);
            return;
        }
        foreach (var fx in _fx)
            if (fx.Kind == EffectKind.InvariantBroken) Fail(h, $"model invariant broken: {fx.Detail}");
    }

    private static string WhoGotIt(Hypothesis h)
    {
        var done = h.D.List.Where(h.D.IsDone).Select(c => $"{h.Name(c)} {(h.D.Phase(c).IsAsleep() ? "asleep" : "running")}").ToList();
        return done.Count == 0 ? "no entry of the list holds a wake-up" : $"the wake-ups went to {string.Join(", ", done)}";
    }

    // ---- one line on one hypothesis ----------------------------------------------------------------

    private void Handle(Hypothesis h, in TraceEvent e)
    {
        var d = h.D;
        var t = e.Task >= 0 ? h.Task(e.Task) : null;
        switch (e.Kind)
        {
            case TraceKind.WaitInit:
            {
                if (t!.Call >= 0) { Fail(h, $"task starts a call while its call {h.Name(t.Call)} is still in flight"); return; }
                if (!CheckLeftovers(h, t)) return;
                if (h.CallOfWaiter.TryGetValue(e.Waiter, out var other)) { Fail(h, $"waiter address {e.Waiter:x} is already in flight ({h.Name(other)})"); return; }
                if (e.Total >= 0 && e.Total != d.Total) { Fail(h, $"the driver counts {e.Total} thread(s); the model was given {d.Total} (policy {d.Policy.Name}, {d.SecureThreads} secure threads)"); return; }
                if (e.SysReq >= 0 && e.SysReq != d.SysReqCount)
                {
                    if (!_registerSeen && seeds.SysReq is null && h.Pending.Count == 0) throw new RestartException(seeds with { SysReq = e.SysReq });
                    Fail(h, $"sys_thread_req_count is {d.SysReqCount} in the model, {e.SysReq} on the board"); return;
                }
                if (e.Free >= 0 && d.Total > 0 && e.Free != d.Free) { Fail(h, $"free_thread_count is {d.Free} in the model, {e.Free} on the board"); return; }
                var call = h.Allocate(e.Waiter, e.Line);
                t.Call = call;
                h.Pending.Add(new Pending(e.Task, TriggerKind.Arrive, call, e.Sys == 1, e.Line));
                _calls++;
                if (e.Sys == 1) _sysCalls++;
                return;
            }
            case TraceKind.Admitted:
            {
                if (t!.Call < 0) return;   // a wait_init we never saw (e.g. probes armed mid-call): nothing to check
                var ph = d.Phase(t.Call);
                if (ph is not (CallPhase.Admitted or CallPhase.InSecure))
                    Fail(h, $"{h.Name(t.Call)} is {ph.Label()}: {WhyBlocked(h, t.Call)}; the trace shows it let through");
                return;
            }
            case TraceKind.Block:
            {
                var call = Known(h, e.Waiter, SeedKind.Asleep);
                Attach(h, t!, call);
                if (h.FailReason is not null) return;
                var ph = d.Phase(call);
                if (ph == CallPhase.Admitted)
                {
                    _fx.Clear();
                    d.Smc(call, _fx);   // no SMC probes: a sleep after admission means the SMC was refused
                    if (d.Phase(call) != CallPhase.RefusedAsleep)
                    {
                        Fail(h, $"{h.Name(call)} was admitted and the secure world has a free thread ({d.SecureFree} of {d.SecureThreads}); the trace shows it sleeping");
                        return;
                    }
                    _refusals++;
                    ph = d.Phase(call);
                }
                if (!ph.IsAsleep()) { Fail(h, $"{h.Name(call)} is {ph.Label()} (admitted at free={d.Free}); the trace shows it sleeping"); return; }
                _blocks++;
                return;
            }
            case TraceKind.Woken:
            {
                var call = Known(h, e.Waiter, SeedKind.Asleep);
                Attach(h, t!, call);
                if (h.FailReason is not null) return;
                h.Pending.Add(new Pending(e.Task, TriggerKind.Wake, call, d.IsSys(call), e.Line));
                return;
            }
            case TraceKind.Complete:
            {
                var target = Known(h, e.Waiter, SeedKind.Running);
                if (t!.ExpectComplete.Count == 0)
                {
                    Fail(h, $"the model has no wake-up to hand out here ({WhyNoWake(h)}); the trace shows {h.Name(target)} completed");
                    return;
                }
                var expected = t.ExpectComplete.Dequeue();
                if (expected != target)
                    Fail(h, $"the wake-up goes to {h.Name(expected)} ({WakeRule(d)}); the trace shows {h.Name(target)}");
                return;
            }
            case TraceKind.Final:
            {
                var call = Known(h, e.Waiter, SeedKind.Running);
                Attach(h, t!, call);
                if (h.FailReason is not null || !CheckLeftovers(h, t!)) return;
                if (e.Done >= 0 && (e.Done == 1) != d.IsDone(call))
                {
                    Fail(h, $"{h.Name(call)}'s completion is {(d.IsDone(call) ? "done (it absorbed a wake-up)" : "not done")} in the model; the board reads done={e.Done}");
                    return;
                }
                if (e.SysReq >= 0 && e.SysReq != d.SysReqCount) { Fail(h, $"sys_thread_req_count is {d.SysReqCount} in the model, {e.SysReq} on the board"); return; }
                h.Pending.Add(new Pending(e.Task, TriggerKind.Final, call, d.IsSys(call), e.Line));
                return;
            }
            case TraceKind.SmcBegin:
            {
                if (e.Smc == SmcCall.Fast || t!.Call < 0) { _ignoredSmc++; return; }
                var ph = d.Phase(t.Call);
                if (e.Smc == SmcCall.RpcReturn)
                {
                    if (ph != CallPhase.InSecure) Fail(h, $"{h.Name(t.Call)} returns from an RPC but is {ph.Label()} in the model");
                    return;
                }
                if (ph != CallPhase.Admitted) { Fail(h, $"{h.Name(t.Call)} issues an SMC but is {ph.Label()}: {WhyBlocked(h, t.Call)}"); return; }
                _fx.Clear();
                d.Smc(t.Call, _fx);
                if (d.Phase(t.Call) == CallPhase.RefusedAsleep) _refusals++;
                return;
            }
            case TraceKind.SmcEnd:
            {
                if (t!.Call < 0) { _ignoredSmc++; return; }
                var ph = d.Phase(t.Call);
                switch (e.Result)
                {
                    case SmcResult.ThreadLimit:
                        if (ph != CallPhase.RefusedAsleep)
                            Fail(h, $"the secure world has a free thread for {h.Name(t.Call)} ({d.SecureFree} of {d.SecureThreads} free before it); the trace shows {d.Policy.Refusal}");
                        return;
                    case SmcResult.Rpc:
                        if (ph != CallPhase.InSecure) Fail(h, $"{h.Name(t.Call)} is {ph.Label()}; the trace shows it in the secure world (RPC)");
                        return;
                    default:
                        if (ph != CallPhase.InSecure) { Fail(h, $"{h.Name(t.Call)} is {ph.Label()}; the trace shows its SMC returning"); return; }
                        _fx.Clear();
                        d.Exit(t.Call, _fx);
                        return;
                }
            }
            case TraceKind.SysRegister:
            {
                _registerSeen = true;
                var key = e.Session ?? $"task{e.Task}";
                if (e.Ok == 0)
                {
                    if (!h.Sessions.ContainsKey(key) && d.Policy.SystemSessionAllowed(d.Total))
                        Fail(h, $"policy {d.Policy.Name} accepts a system session with {d.Total} counted threads; the board refused it");
                    return;
                }
                if (h.Sessions.ContainsKey(key)) return;
                var id = h.Sessions.Count == 0 ? 0 : h.Sessions.Values.Max() + 1;
                _fx.Clear();
                if (!d.RegisterSystem(id, _fx)) { Fail(h, $"policy {d.Policy.Name} refuses system sessions here ({_fx[^1].Detail}); the board accepted one"); return; }
                h.Sessions[key] = id;
                return;
            }
            case TraceKind.CloseBegin:
                t!.CloseSys = e.Sys == 1;
                t.CloseSession = e.Session;
                return;
        }
    }

    /// <summary>Wake-ups the model handed out that the trace never showed, before the task's next call.</summary>
    private bool CheckLeftovers(Hypothesis h, TaskInfo t)
    {
        if (t.ExpectComplete.Count == 0) return true;
        var missing = string.Join(", ", t.ExpectComplete.Select(h.Name));
        Fail(h, $"the previous wait_final of this task wakes {missing} in the model; the trace shows no such complete");
        return false;
    }

    private int Known(Hypothesis h, ulong w, SeedKind kind)
    {
        if (h.CallOfWaiter.TryGetValue(w, out var call)) return call;
        if (seeds.Waiters.Any(x => x.Waiter == w))
        {
            // A seeded waiter that left and came back without wait_init: a probe was lost.
            h.FailReason = $"waiter {w:x} appears without its wait_init (was a probe lost?)";
            return -1;
        }
        throw new RestartException(seeds.With(w, kind));
    }

    private void Attach(Hypothesis h, TaskInfo t, int call)
    {
        if (call < 0) return;
        if (t.Call < 0) t.Call = call;   // a seeded waiter meets its task
        else if (t.Call != call) Fail(h, $"task is in call {h.Name(t.Call)} but the line names {h.Name(call)}");
    }

    private static string WhyBlocked(Hypothesis h, int call)
    {
        var d = h.D;
        if (d.Total == 0) return "the secure world refused it";
        var thr = d.Policy.Threshold(d.IsSys(call), d.SysReqCount);
        return $"{(d.IsSys(call) ? "a system" : "a normal")} caller needs free > {thr} ({d.Policy.Name}{(d.SysReqCount > 0 ? $", {d.SysReqCount} system session(s) registered" : "")}), free is {d.Free}";
    }

    private static string WakeRule(DriverState d) => d.Policy.WakeOrder == WakeOrder.SystemFirst
        ? "first not-done system entry, else first not-done entry" : "first not-done entry of the list";

    private static string WhyNoWake(Hypothesis h) => h.D.ListCount == 0 ? "the list is empty" : "every entry's completion is already done";

    private void Observe(Hypothesis h)
    {
        var (n, s) = h.D.InSecureByClass();
        _maxIn = Math.Max(_maxIn, n + s); _maxNormal = Math.Max(_maxNormal, n); _maxSys = Math.Max(_maxSys, s);
        if (h.D.SysReqCount > 0) _maxNormalWhileSys = Math.Max(_maxNormalWhileSys, n);
    }

    private Divergence? Finish()
    {
        // Triggers still pending at the end happened; apply them in line order.
        var survivors = new List<Hypothesis>();
        string? reason = null;
        foreach (var h in _hyps)
        {
            while (h.Pending.Count > 0 && h.FailReason is null) ApplyAt(h, 0);
            if (h.FailReason is null) survivors.Add(h); else reason ??= h.FailReason;
        }
        if (survivors.Count > 0) { Observe(survivors[0]); return null; }
        RestartIfWaitersPredateTheTrace();
        return new Divergence(reader.LinesRead, 0, "-", "(end of trace)", reason ?? "", _hyps[0].D.Describe(_hyps[0].Name), RecentBefore());
    }

    private IReadOnlyList<string> RecentBefore()
    {
        var n = (int)Math.Min(_recentCount, _recent.Length);
        return Enumerable.Range(0, n).Select(i => Describe(_recent[(_recentCount - n + i) % _recent.Length])).ToList();
    }

    private ConformanceResult Result(bool conforms, Divergence? div)
    {
        if (_ignoredSmc > 0) _notes.Add($"{_ignoredSmc} SMC line(s) outside any traced call (fast calls) ignored");
        return new ConformanceResult(source, _policy, _threads, _total, _events, conforms, div,
            new ConformanceStats(_calls, _sysCalls, _blocks, _refusals, _wakeups, _absorbed, _maxIn, _maxNormal, _maxSys,
                _maxNormalWhileSys, seeds.Waiters.Count, _maxHyps, _reorderings),
            sw.Elapsed, _notes);
    }
}
