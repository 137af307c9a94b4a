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
    public const int MaxRestarts = 96;

    public static ConformanceResult Check(Func<Stream> open, string source, ConformanceOptions? options = null)
    {
        options ??= new ConformanceOptions();
        var seeds = new SeedPlan([], null);
        var sw = Stopwatch.StartNew();
        for (var attempt = 0; ; attempt++)
        {
            using var reader = new TraceReader(open(), source);
            var outcome = new CheckRun(reader, source, options, seeds, sw).Execute(lastAttempt: attempt >= MaxRestarts);
            if (outcome.Result is { } result) return result;
            seeds = outcome.Restart!;
        }
    }

    /// <summary>The same check over an in-memory trace (tests, small tools).</summary>
    public static ConformanceResult CheckText(string jsonLines, string source = "(trace)", ConformanceOptions? options = null) =>
        Check(() => new MemoryStream(System.Text.Encoding.UTF8.GetBytes(jsonLines)), source, options);
}

internal enum SeedKind { Running, Asleep }

/// <summary>Calls in flight when the trace began; DoneCombo picks which of them start with their completion set.</summary>
internal sealed record SeedPlan(IReadOnlyList<(ulong Waiter, SeedKind Kind)> Waiters, int? SysReq, int DoneCombo = 0)
{
    public const int MaxSeedsWithUnknownFlag = 4;

    public SeedPlan With(ulong w, SeedKind kind)
    {
        var list = Waiters.Where(x => x.Waiter != w).ToList();
        list.Add((w, kind));
        return this with { Waiters = list, DoneCombo = 0 };
    }

    public int Combos => 1 << Math.Min(Waiters.Count, MaxSeedsWithUnknownFlag);

    public SeedPlan WithAll(IEnumerable<(ulong Waiter, SeedKind Kind)> more) => this with { Waiters = [.. Waiters, .. more], DoneCombo = 0 };
}

/// <summary>What one pass over the trace gave: a verdict, or a better guess at what was in flight when it began (read it again).</summary>
internal readonly record struct RunOutcome(ConformanceResult? Result, SeedPlan? Restart);

/// <summary>Forward: wait_final's second complete_one, owed by a caller that had absorbed a wake-up.</summary>
internal enum TriggerKind : byte { Arrive, Wake, Requeue, Recheck, Final, Forward }

/// <summary>A critical section known to have begun (its probe fired) but not yet placed in lock order.
/// Order/Time: where it most likely ran (the probe's line, or the first line from inside it).</summary>
internal readonly record struct Pending(int Task, TriggerKind Kind, int Call, bool Sys, long Line, double Time)
{
    public long Order { get; init; } = Line;
}

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
        return sb.ToString();
    }
}

internal sealed class CheckRun(TraceReader reader, string source, ConformanceOptions options, SeedPlan seeds, Stopwatch sw)
{
    private Hypothesis _current = null!;
    // Lines are judged in line order (probe order taken as lock order), in place. When a line cannot
    // be explained, the state from a checkpoint before it is replayed with every order of racing
    // critical sections open (depth first, line order first) — over a short stretch first, longer
    // ones if needed. Checkpoints and lines are kept for the longest stretch.
    private readonly List<TraceEvent> _window = [];
    private long _windowStart;
    private readonly List<(long Index, Hypothesis State)> _checkpoints = [];
    private const int CheckpointEvery = 256;
    private long _backtracks;
    private long _replayBudget;
    private (long Index, string Reason, string State, TraceEvent Event) _furthest = (-1, "", "", default);

    private sealed record ChoicePoint(long Index, Queue<Hypothesis> Alternatives);

    private readonly List<Effect> _fx = [];
    private readonly TraceEvent[] _recent = new TraceEvent[8];   // formatted only when a divergence is reported
    private long _recentCount;
    private int _seenMask;   // bit per TraceKind met so far
    private IReadOnlySet<TraceKind>? _declared;
    private bool _registerSeen;
    private readonly List<string> _notes = [];
    private long _events;
    private readonly HashSet<ulong> _introduced = [];
    private Policy _policy = null!;
    private int _threads, _total;

    /// <summary>Set when a line shows the check began from a wrong picture of the calls in flight: the pass stops and the trace is read again.</summary>
    private SeedPlan? _restart;

    // The tracer's line order per task (checked as lines are read) and whether it was broken.
    private LineProtocol? _protocol;
    private bool _protocolBroken;

    public RunOutcome Execute(bool lastAttempt)
    {
        var any = Fill();
        if (!any)
            throw new TraceFormatException(source, Math.Max(1, reader.LinesRead), "ev",
                "no events in the trace (a header alone shows nothing to check; was the tracer armed?)");
        _current = Configure(_ahead.Peek());
        if (Run())
        {
            if (reader.CallQueueEvents == 0)
                throw new TraceFormatException(source, Math.Max(1, reader.LinesRead), "ev",
                    "no call-queue events in the trace, only marks: nothing to check (was the tracer armed?)");
            return new(Result(true, null), null);
        }
        if (lastAttempt)
        {
            _notes.Add($"the check was started {ConformanceChecker.MaxRestarts} times with other calls in flight at the beginning; the last attempt's divergence is reported");
            return new(Result(false, FurthestDivergence()), null);
        }
        if (_protocolBroken) return new(Result(false, FurthestDivergence()), null);
        if (_restart is not null) return new(null, CollectWaitersPredatingTheTrace(_restart));
        var plan = CollectWaitersPredatingTheTrace(seeds);
        if (plan != seeds) return new(null, plan);
        // A call in flight at the start may have held a wake-up already: try the next combination.
        if (seeds.DoneCombo + 1 < seeds.Combos) return new(null, seeds with { DoneCombo = seeds.DoneCombo + 1 });
        return new(Result(false, FurthestDivergence()), null);
    }

    // Called once per check and looping over the whole trace: without this the tiered JIT only ever
    // runs it as an on-stack-replacement build of its first tier.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private bool Run()
    {
        while (_ahead.Count > 0)
        {
            var e = _ahead.Dequeue();
            Fill();
            var index = _events++;
            if ((_events & 0xFFFF) == 0) options.Progress?.Invoke(_events);
            Remember(e);
            _window.Add(e);
            if (index % CheckpointEvery == 0) _checkpoints.Add((index, _current.Clone()));
            if (_protocol?.Violation is { } v && v.Line == e.Line)
            {
                // A line missing or moved: no order of critical sections can make up for it.
                _protocolBroken = true;
                Failed(in e, index, v.Reason, _current);
                return false;
            }
            if (!Advance(in e, index) && (_restart is not null || !Repair(index))) return false;
            Trim(index);
        }
        return Finish();
    }

    // Lines read ahead: lets a trigger see its task's next line (bounded, so memory stays flat).
    private readonly Queue<TraceEvent> _ahead = new();
    private const int Lookahead = 4096;
    private bool _eof;

    private bool Fill()
    {
        var e = new TraceEvent();
        while (!_eof && _ahead.Count < Lookahead)
        {
            if (reader.Next(ref e))
            {
                _ahead.Enqueue(e);
                NoteInside(in e);
                NoteBoundary(in e);
                (_protocol ??= new LineProtocol(reader.Header?.Probes)).See(in e);
            }
            else
            {
                _eof = true;
                foreach (var open in _openFinals.Values) open.Closed = true;
                _openFinals.Clear();
            }
        }
        return _ahead.Count > 0;
    }

    /// <summary>
    /// The complete lines a wait_final line is followed by, in its task, before any other line of that
    /// task: they come from inside that wait_final, so they are every wake-up it handed out, in order.
    /// Known when the line is read (ahead of judging it), so a history that makes the wait_final wake
    /// someone else, or anyone when it shows none, is dropped where it happens — not at the task's next
    /// call, by which time a search for another order would have to undo hundreds of lines.
    /// </summary>
    private sealed class InsideFinal
    {
        public readonly List<(ulong Waiter, long Line, double Time)> Targets = new(2);
        /// <summary>The task's next other line (or the end of the trace) has been read: no more complete lines.</summary>
        public bool Closed;
    }

    private readonly Dictionary<long, InsideFinal> _insideFinal = [];   // by the final's line
    private readonly Dictionary<int, InsideFinal> _openFinals = [];     // by task, until its next other line
    private readonly Queue<long> _finalLines = new();                   // to forget them once out of the window

    private void NoteInside(in TraceEvent e)
    {
        if (e.Task < 0 || e.Kind == TraceKind.Mark) return;
        if (_openFinals.TryGetValue(e.Task, out var open))
        {
            if (e.Kind == TraceKind.Complete)
            {
                open.Targets.Add((e.Waiter, e.Line, e.Time));
                return;
            }
            open.Closed = true;
            _openFinals.Remove(e.Task);
        }
        if (e.Kind != TraceKind.Final) return;
        var inside = new InsideFinal();
        _insideFinal[e.Line] = inside;
        _openFinals[e.Task] = inside;
        _finalLines.Enqueue(e.Line);
    }

    /// <summary>One line on the current history in line order, in place; false when it cannot be explained there.</summary>
    private bool Advance(in TraceEvent e, long index)
    {
        if (e.Kind == TraceKind.Mark) return true;
        if (e.Kind == TraceKind.WaitInit) _introduced.Add(e.Waiter);
        ForceStale(_current, e.Time);
        var h = _current;
        while (h.FailReason is null && h.DueIndexOf(e.Task, e.Kind) >= 0) ApplyAt(h, EarliestHead(h));
        if (h.FailReason is null) Handle(h, in e);
        if (h.FailReason is not null) return Failed(in e, index, h.FailReason, h);
        Observe(h);
        return true;
    }

    /// <summary>The pending step that comes first: per task only its first step can run; among those, the lowest order.</summary>
    private static int EarliestHead(Hypothesis h)
    {
        int best = -1;
        for (var i = 0; i < h.Pending.Count; i++)
        {
            var p = h.Pending[i];
            var first = true;
            for (var j = 0; j < i; j++) if (h.Pending[j].Task == p.Task) { first = false; break; }
            if (!first) continue;
            if (best < 0 || p.Order < h.Pending[best].Order) best = i;
        }
        return best;
    }

    private bool Failed(in TraceEvent e, long index, string reason, Hypothesis state)
    {
        if (index >= _furthest.Index) _furthest = (index, reason, DescribeState(state), e);
        return false;
    }

    /// <summary>
    /// Line <paramref name="fail"/> cannot be explained in line order: replay from a checkpoint some
    /// lines back with every order of racing critical sections open, over longer stretches if needed.
    /// </summary>
    private bool Repair(long fail, bool toTheEnd = false)
    {
        _replayBudget = options.BacktrackEvents * 200L;
        foreach (var stretch in new[] { 256, 1024, options.BacktrackEvents })
        {
            var cp = _checkpoints.LastOrDefault(x => x.Index <= Math.Max(_windowStart, fail - stretch));
            if (cp.State is null) cp = _checkpoints.FirstOrDefault();
            if (cp.State is null || cp.Index < _windowStart) continue;
            if (Search(cp, fail, toTheEnd)) return true;
            if (_replayBudget <= 0) break;
        }
        if (_replayBudget <= 0) _notes.Add($"the search for an order of racing critical sections was cut after {options.BacktrackEvents * 200L:N0} replayed lines");
        return false;
    }

    /// <summary>Depth first from a checkpoint through line <paramref name="fail"/>, line order first at every line.</summary>
    private bool Search((long Index, Hypothesis State) from, long fail, bool toTheEnd)
    {
        var choices = new List<ChoicePoint>();
        var keep = _checkpoints.FindLastIndex(x => x.Index <= from.Index);
        _checkpoints.RemoveRange(keep + 1, _checkpoints.Count - keep - 1);
        _current = from.State.Clone();
        var j = from.Index;
        while (true)
        {
            if (j > fail)
            {
                // At the end of the trace the triggers still pending must also be placeable.
                if (!toTheEnd || CanFinish(_current)) return true;
                if (!NextChoice(choices, ref j)) return false;
                continue;
            }
            if (--_replayBudget < 0 || _restart is not null) return false;
            if (j > from.Index && j % CheckpointEvery == 0)
            {
                _checkpoints.RemoveAll(x => x.Index >= j);
                _checkpoints.Add((j, _current.Clone()));
            }
            var e = _window[(int)(j - _windowStart)];
            var survivors = AllOrders(in e, j);
            if (survivors.Count == 0)
            {
                if (!NextChoice(choices, ref j)) return false;
                continue;
            }
            _current = survivors[0];
            if (survivors.Count > 1) choices.Add(new ChoicePoint(j, new Queue<Hypothesis>(survivors.Skip(1))));
            j++;
        }
    }

    private bool NextChoice(List<ChoicePoint> choices, ref long j)
    {
        while (choices.Count > 0 && choices[^1].Alternatives.Count == 0) choices.RemoveAt(choices.Count - 1);
        if (choices.Count == 0) return false;
        var cp = choices[^1];
        _current = cp.Alternatives.Dequeue();
        _current.Stats.Reorderings++;
        _backtracks++;
        j = cp.Index + 1;
        return true;
    }

    private bool CanFinish(Hypothesis h)
    {
        var done = h.Clone();
        while (done.Pending.Count > 0 && done.FailReason is null) ApplyAt(done, EarliestHead(done));
        return done.FailReason is null;
    }

    /// <summary>Every order of the line's task's pending critical sections (with other tasks' before them) that explains it; line order first.</summary>
    private List<Hypothesis> AllOrders(in TraceEvent e, long index)
    {
        var survivors = new List<Hypothesis>(2);
        if (e.Kind == TraceKind.Mark) { survivors.Add(_current); return survivors; }
        if (e.Kind == TraceKind.WaitInit) _introduced.Add(e.Waiter);
        var start = _current.Clone();
        ForceStale(start, e.Time);
        if (start.FailReason is not null) { Failed(in e, index, start.FailReason, start); return survivors; }
        string? reason = null;
        var lineOrderFailed = false;
        var first = true;
        foreach (var b in Expand(start, e.Task, e.Kind, readsCounters: false))
        {
            if (b.FailReason is null) Handle(b, in e);
            if (b.FailReason is null) { Observe(b); survivors.Add(b); }
            else { reason ??= b.FailReason; if (first) lineOrderFailed = true; }
            first = false;
        }
        if (survivors.Count == 0) Failed(in e, index, reason ?? "no order of racing critical sections explains this line", start);
        else if (lineOrderFailed) survivors[0].Stats.Reorderings++;
        return survivors;
    }

    /// <summary>Checkpoints and lines older than the longest stretch a repair may replay are dropped.</summary>
    private void Trim(long index)
    {
        var oldest = index - options.BacktrackEvents;
        var keepCp = _checkpoints.FindLastIndex(cp => cp.Index <= oldest);
        if (keepCp > 0) _checkpoints.RemoveRange(0, keepCp);
        var keepFrom = _checkpoints.Count > 0 ? _checkpoints[0].Index : index + 1;
        var remove = (int)Math.Min(_window.Count, Math.Max(0, keepFrom - _windowStart));
        if (remove > 1024)
        {
            _window.RemoveRange(0, remove);
            _windowStart += remove;
            var first = _window.Count > 0 ? _window[0].Line : long.MaxValue;
            while (_finalLines.Count > 0 && _finalLines.Peek() < first) _insideFinal.Remove(_finalLines.Dequeue());
        }
    }

    /// <summary>The driver state, and the critical sections whose probes fired but which the model has not placed yet.</summary>
    private string DescribeState(Hypothesis h)
    {
        var state = h.D.Describe(h.Name);
        if (h.Pending.Count == 0) return state;
        return state + "; not yet placed: " + string.Join(", ", h.Pending.Select(p =>
            $"{reader.TaskName(p.Task)} {p.Kind.ToString().ToLowerInvariant()}{(p.Call >= 0 ? " " + h.Name(p.Call) : "")} (line {p.Line}, t={p.Time:0.000000})"));
    }

    private Divergence FurthestDivergence()
    {
        var (_, reason, state, e) = _furthest;
        return new Divergence(e.Line, e.Time, reader.TaskName(e.Task), Describe(e), reason, state, RecentBefore());
    }

    private Hypothesis Configure(TraceEvent? first)
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
        // A call in flight when the trace began may already hold a wake-up (absorbed earlier): its
        // completion flag is unknown; seeds.DoneCombo says which start with it set (tried in turn).
        var hyp = new Hypothesis { D = new DriverState(_policy, _threads, _total) };
        hyp.D.SeedSystemSessions(seeds.SysReq ?? h?.SysReq ?? 0);
        for (var i = 0; i < seeds.Waiters.Count; i++)
        {
            var (w, kind) = seeds.Waiters[i];
            _introduced.Add(w);
            var call = hyp.Allocate(w, 0, -1);
            hyp.D.Seed(call, false, kind == SeedKind.Running ? CallPhase.InSecure
                : _total > 0 ? CallPhase.QueuedAsleep : CallPhase.RefusedAsleep,
                done: i < SeedPlan.MaxSeedsWithUnknownFlag && (seeds.DoneCombo & (1 << i)) != 0);
        }
        hyp.NoteCounters();
        if (seeds.Waiters.Count > 0)
            _notes.Add($"{seeds.Waiters.Count} call(s) were already in flight when the trace began; placed at the head of the list");
        if (seeds.SysReq is { } sr && h?.SysReq is null)
            _notes.Add($"{sr} system session(s) were registered before the trace began (from the first counters)");
        return hyp;
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

    /// <summary>
    /// Before calling a divergence, read on: every waiter that shows up later without a wait_init
    /// was in flight from the start (unless its task began another call before), and the check
    /// starts over with all of them in place — at once, so a trace starting with a hundred calls in
    /// flight costs one more pass, not a hundred.
    /// </summary>
    private SeedPlan CollectWaitersPredatingTheTrace(SeedPlan plan)
    {
        var known = plan.Waiters.Select(x => x.Waiter).ToHashSet();
        var added = new List<(ulong, SeedKind)>();
        void Look(in TraceEvent e)
        {
            NoteBoundary(in e);
            if (!e.HasWaiter || e.Kind == TraceKind.Header) return;
            if (e.Kind == TraceKind.WaitInit) { _introduced.Add(e.Waiter); return; }
            if (_introduced.Contains(e.Waiter) || known.Contains(e.Waiter) || !MayPredateTheTrace(in e)) return;
            added.Add((e.Waiter, e.Kind is TraceKind.Woken or TraceKind.Block ? SeedKind.Asleep : SeedKind.Running));
            known.Add(e.Waiter);
            _introduced.Add(e.Waiter);
        }
        foreach (var a in _ahead) Look(in a);
        var ev = new TraceEvent();
        while (reader.Next(ref ev)) Look(in ev);
        return added.Count == 0 ? plan : plan.WithAll(added);
    }

    // Per task, the line of its first wait_init or final: a waiter the task names after that line
    // cannot be a call that was in flight when the trace began (its wait_init line is missing).
    private readonly Dictionary<int, long> _firstBoundary = [];

    private void NoteBoundary(in TraceEvent e)
    {
        if (e.Kind is TraceKind.WaitInit or TraceKind.Final && e.Task >= 0) _firstBoundary.TryAdd(e.Task, e.Line);
    }

    /// <summary>A complete line names another task's waiter; the others name the line's own task's.</summary>
    private bool MayPredateTheTrace(in TraceEvent e) =>
        e.Kind == TraceKind.Complete || !_firstBoundary.TryGetValue(e.Task, out var first) || first >= e.Line;

    /// <summary>
    /// Resolves the line's task: every pending step of that task is applied (in its order), and any
    /// prefix of other tasks' pending steps may run before or between them — their probes fired
    /// earlier, so their critical sections may have come first. The search is bounded and merges
    /// equal states; the first result keeps line order (probe order taken as lock order).
    /// </summary>
    /// <summary>
    /// A probe fires just before its critical section: a trigger older than the window has certainly
    /// run by now. Placing it (in line order) keeps the number of open orders small.
    /// </summary>
    private void ForceStale(Hypothesis h, double now)
    {
        var limit = now - options.RaceWindow.TotalSeconds;
        while (h.FailReason is null)
        {
            // Any stale step, not only the first: a wake-up step (no probe time: the sleeper's own line
            // places it) can stand before an old wait_final for as long as that sleeper stays silent.
            var stale = -1;
            for (var i = 0; i < h.Pending.Count; i++)
                if (h.Pending[i].Time < limit) { stale = i; break; }
            if (stale < 0) return;
            // Its task's earlier steps ran before it.
            ApplyAt(h, h.PendingIndexOf(h.Pending[stale].Task));
        }
    }

    private static bool ReadsCounters(in TraceEvent e) => e.Free >= 0 || e.SysReq >= 0 || e.Done >= 0;

    private List<Hypothesis> Expand(Hypothesis h, int task, TraceKind line, bool readsCounters)
    {
        var own = h.DueIndexOf(task, line);
        var others = h.Pending.Any(p => p.Task != task);
        if (!others || (own < 0 && !readsCounters))
        {
            while (h.FailReason is null && h.DueIndexOf(task, line) is var i and >= 0) ApplyAt(h, i);
            return [h];
        }
        var results = new List<Hypothesis>();
        var seen = new HashSet<string>();
        var budget = SearchBudget;
        Search(h, task, line, readsCounters, results, seen, ref budget);
        if (budget <= 0 && !_searchCapped)
        {
            _searchCapped = true;
            _notes.Add($"more than {SearchBudget} orders of racing critical sections at one line; the search was cut there");
        }
        return results;
    }

    private const int SearchBudget = 4000;
    private bool _searchCapped;

    /// <param name="readsCounters">The line read shared counters before any lock: others' pending
    /// critical sections may already be in what it read, so they may run first even when this task has
    /// nothing pending.</param>
    private void Search(Hypothesis cur, int task, TraceKind line, bool readsCounters, List<Hypothesis> results, HashSet<string> seen, ref int budget)
    {
        if (--budget < 0) return;
        if (cur.FailReason is not null) { results.Add(cur); return; }
        var ownLeft = cur.DueIndexOf(task, line) >= 0;
        if (!ownLeft && !seen.Add(cur.Key())) return;
        if (!ownLeft) results.Add(cur);
        // Next step of each task with pending steps, in line order (the canonical choice first).
        var heads = new List<int>();
        var tasks = new HashSet<int>();
        for (var i = 0; i < cur.Pending.Count; i++)
            if (tasks.Add(cur.Pending[i].Task)) heads.Add(i);
        // Line order, except that a wait_final whose wake-ups show as complete lines is placed at the
        // first of them: those lines come from inside its critical section, the probe from before the
        // lock (a task can be preempted in between for a long time).
        heads.Sort((a, b) => cur.Pending[a].Order.CompareTo(cur.Pending[b].Order));
        // Once this task is resolved, other tasks' steps stay pending (they are placed when needed),
        // unless the line read counters that may already include them.
        if (!ownLeft && !readsCounters) return;
        foreach (var i in heads)
        {
            var next = cur.Clone();
            ApplyAt(next, i);
            Search(next, task, line, readsCounters, results, seen, ref budget);
        }
    }

    private void ApplyAt(Hypothesis h, int index)
    {
        var p = h.Pending[index];
        // A wait_final owing its forward holds the lock: any other critical section comes after the
        // forward; only a return from wait_for_completion (lockless) may come between.
        if (h.D.Forwarding() >= 0 && p.Kind is not (TriggerKind.Wake or TriggerKind.Forward) && h.Pending.FindIndex(x => x.Kind == TriggerKind.Forward) is var f and >= 0)
        {
            ApplyAt(h, f);
            if (h.FailReason is not null) return;
            if (f < index) index--;
        }
        h.Pending.RemoveAt(index);
        Apply(h, p);
    }

    private static void Fail(Hypothesis h, string reason) => h.FailReason ??= reason;

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
                case TriggerKind.Requeue:
                    d.Requeue(p.Call, _fx);
                    foreach (var fx in _fx) if (fx.Kind == EffectKind.WakeupLost) h.Stats.Lost++;
                    break;
                case TriggerKind.Recheck:
                    // Only a caller that slept for a slot re-checks; a refused one went back to its SMC.
                    if (d.Phase(p.Call) == CallPhase.Rechecking) d.Recheck(p.Call, _fx);
                    break;
                case TriggerKind.Final:
                    if (d.Phase(p.Call) == CallPhase.Admitted) d.SmcObserved(p.Call, true, _fx);   // no SMC probes: the call ran
                    if (d.Phase(p.Call) == CallPhase.RefusedAsleep)
                    {
                        Fail(h, $"{h.Name(p.Call)} was refused a secure thread and never retried, yet it ends");
                        return;
                    }
                    h.Task(p.Task).Call = -1;
                    h.Task(p.Task).FinalWakes = 0;
                    if (d.Leave(p.Call, _fx))
                    {
                        // The second complete_one is a step of its own: a caller woken by the first may
                        // consume its wake-up before it (the task's next complete line places it).
                        NoteWakeups(h, p);
                        h.Pending.Add(p with { Kind = TriggerKind.Forward });
                        break;
                    }
                    AfterFinal(h, p);
                    break;
                case TriggerKind.Forward:
                    d.Forward(p.Call, _fx);
                    AfterFinal(h, p);
                    break;
            }
        }
        catch (ModelStepException ex)
        {
            Fail(h, ex.Message);
            return;
        }
        h.NoteCounters();
        foreach (var fx in _fx)
            if (fx.Kind == EffectKind.InvariantBroken) Fail(h, $"model invariant broken: {fx.Detail}");
    }

    /// <summary>wait_final is over: a closed system session is uncounted, the call's id is freed.</summary>
    private void AfterFinal(Hypothesis h, Pending p)
    {
        var d = h.D;
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
        NoteWakeups(h, p);
        t.FinalWakes = 0;
        h.Release(p.Call);
        // The TaskInfo stays: a task usually calls again soon, and allocating one per call costs more than it saves.
    }

    /// <summary>The wake-ups in <see cref="_fx"/>: the complete lines they must show, counts, and the woken callers' wake steps.</summary>
    private void NoteWakeups(Hypothesis h, Pending p)
    {
        var t = h.Task(p.Task);
        var complete = Probed(TraceKind.Complete);
        var inside = complete ? _insideFinal.GetValueOrDefault(p.Line) : null;
        foreach (var fx in _fx)
        {
            if (fx.Kind is not (EffectKind.Woken or EffectKind.Absorbed)) continue;
            if (complete) t.ExpectComplete.Enqueue(fx.Subject);
            var k = t.FinalWakes++;
            if (inside is not null && (k < inside.Targets.Count ? inside.Targets[k].Waiter != h.WaiterOf[fx.Subject] : inside.Closed))
            {
                Fail(h, k < inside.Targets.Count
                    ? $"the wake-up goes to {h.Name(fx.Subject)} ({WakeRule(h.D)}); the trace shows {NameOf(h, inside.Targets[k].Waiter)} completed at line {inside.Targets[k].Line} (wake-up {k + 1} of the wait_final of line {p.Line})"
                    : $"wait_final of line {p.Line} hands a wake-up to {h.Name(fx.Subject)} ({WakeRule(h.D)}); the trace shows {(k == 0 ? "no complete from it" : $"only {k} complete line(s) from it")}");
                return;
            }
            h.Stats.Wakeups++;
            if (fx.Kind is EffectKind.Absorbed) { h.Stats.Absorbed++; continue; }
            // The sleeper may return from wait_for_completion any time from now, even before its own
            // woken probe fires (its vCPU can be preempted in between). Usually it is later, so this
            // step is placed last unless a line needs it earlier.
            if (h.TaskOf[fx.Subject] is var wt and >= 0)
                h.Pending.Add(new Pending(wt, TriggerKind.Wake, fx.Subject, h.D.IsSys(fx.Subject), p.Line, double.MaxValue) { Order = long.MaxValue });
        }
    }

    private static string NameOf(Hypothesis h, ulong waiter) =>
        h.CallOfWaiter.TryGetValue(waiter, out var call) ? h.Name(call) : $"w={waiter:x}";

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
                // A waiter lives on its caller's stack: its address comes back (a new task's stack in
                // the same place) only once the call that had it is past wait_final, so a final of that
                // call still pending (inside the race window) ran before this wait_init.
                while (h.FailReason is null && h.CallOfWaiter.TryGetValue(e.Waiter, out var before)
                       && h.Pending.Exists(p => p.Call == before && p.Kind is TriggerKind.Final or TriggerKind.Forward))
                    ApplyAt(h, EarliestHead(h));
                if (h.FailReason is not null) return;
                if (h.CallOfWaiter.TryGetValue(e.Waiter, out var other)) { Fail(h, $"waiter address {e.Waiter:x} is already in flight ({h.Name(other)})"); return; }
                if (e.Total >= 0 && e.Total != d.Total) { Fail(h, $"the driver counts {e.Total} thread(s); the model was given {d.Total} (policy {d.Policy.Name}, {d.SecureThreads} secure threads)"); return; }
                if (e.SysReq >= 0 && e.SysReq != d.SysReqCount && !_registerSeen && seeds.SysReq is null && h.Pending.Count == 0)
                {
                    // The first counters tell how many system sessions were registered before the trace began.
                    _restart ??= seeds with { SysReq = e.SysReq };
                    Fail(h, "system sessions registered before the trace began: checking again from the start");
                    return;
                }
                // Counters are read before the lock, and under emulation a vCPU can be preempted between
                // the event's timestamp and the read: a value may be older or newer than the line's
                // place. They are compared and counted, not used to reject a history.
                if (!h.CountersPlausible(d.Total > 0 ? e.Free : -1, e.SysReq)) h.Stats.CounterMismatches++;
                var call = h.Allocate(e.Waiter, e.Line, e.Task);
                t.Call = call;
                h.Pending.Add(new Pending(e.Task, TriggerKind.Arrive, call, e.Sys == 1, e.Line, e.Time));
                h.Stats.Calls++;
                if (e.Sys == 1) h.Stats.SysCalls++;
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
                var call = Known(h, in e, SeedKind.Asleep);
                Attach(h, t!, e.Task, call);
                if (h.FailReason is not null) return;
                var ph = d.Phase(call);
                if (ph == CallPhase.Admitted)
                {
                    if (Probed(TraceKind.SmcEnd))
                    {
                        Fail(h, $"{h.Name(call)} was admitted and no SMC of it was refused; the trace shows it sleeping");
                        return;
                    }
                    _fx.Clear();
                    d.SmcObserved(call, false, _fx);   // no SMC probes: a sleep after admission means the SMC was refused
                    h.Stats.Refusals++;
                    ph = d.Phase(call);
                }
                // Waking: its completion was already set, so wait_for_completion returns at once.
                if (!ph.IsAsleep() && ph is not (CallPhase.Waking or CallPhase.WakingRefused))
                {
                    Fail(h, $"{h.Name(call)} is {ph.Label()} (admitted at free={d.Free}); the trace shows it sleeping");
                    return;
                }
                h.Stats.Blocks++;
                return;
            }
            case TraceKind.Woken:
            {
                var call = Known(h, in e, SeedKind.Asleep);
                Attach(h, t!, e.Task, call);
                if (h.FailReason is not null) return;
                // Returned from wait_for_completion (possibly well before this probe: the wake step was
                // queued when the wake-up was delivered); the move to the tail and the re-check are two
                // more critical sections with no probe of their own: they follow before the task's next line.
                var wakeQueued = h.Pending.Any(p => p.Call == call && p.Kind == TriggerKind.Wake);
                if (!wakeQueued && !d.Phase(call).IsWaking())
                    h.Pending.Add(new Pending(e.Task, TriggerKind.Wake, call, d.IsSys(call), e.Line, e.Time));
                h.Pending.Add(new Pending(e.Task, TriggerKind.Requeue, call, d.IsSys(call), e.Line, e.Time));
                h.Pending.Add(new Pending(e.Task, TriggerKind.Recheck, call, d.IsSys(call), e.Line, e.Time));
                return;
            }
            case TraceKind.Complete:
            {
                var target = Known(h, in e, SeedKind.Running);
                if (h.FailReason is not null) return;
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
                var call = Known(h, in e, SeedKind.Running);
                Attach(h, t!, e.Task, call);
                if (h.FailReason is not null || !CheckLeftovers(h, t!)) return;
                if ((e.Done >= 0 && (e.Done == 1) != d.IsDone(call)) || !h.CountersPlausible(d.Total > 0 ? e.Free : -1, e.SysReq))
                    h.Stats.CounterMismatches++;
                var final = new Pending(e.Task, TriggerKind.Final, call, d.IsSys(call), e.Line, e.Time);
                if (_insideFinal.TryGetValue(e.Line, out var inside) && inside.Targets.Count > 0)
                    final = final with { Order = inside.Targets[0].Line, Time = inside.Targets[0].Time };
                h.Pending.Add(final);
                return;
            }
            case TraceKind.SmcBegin:
            {
                if (e.Smc == SmcCall.Fast || t!.Call < 0) { h.Stats.IgnoredSmc++; return; }
                var ph = d.Phase(t.Call);
                if (e.Smc == SmcCall.RpcReturn)
                {
                    if (ph != CallPhase.InSecure) Fail(h, $"{h.Name(t.Call)} returns from an RPC but is {ph.Label()} in the model");
                    return;
                }
                if (ph != CallPhase.Admitted) Fail(h, $"{h.Name(t.Call)} issues an SMC but is {ph.Label()}: {WhyBlocked(h, t.Call)}");
                return;
            }
            case TraceKind.SmcEnd:
            {
                // The secure world's answer is the board's: the tracepoints bracket the SMC, so which
                // of two racing SMCs got the last thread cannot be told; what the driver does next is judged.
                if (t!.Call < 0) { h.Stats.IgnoredSmc++; return; }
                var ph = d.Phase(t.Call);
                _fx.Clear();
                switch (e.Result)
                {
                    case SmcResult.ThreadLimit:
                        if (ph != CallPhase.Admitted) { Fail(h, $"{h.Name(t.Call)} is {ph.Label()}; the trace shows its SMC refused"); return; }
                        d.SmcObserved(t.Call, false, _fx);
                        h.Stats.Refusals++;
                        return;
                    case SmcResult.Rpc:
                        if (ph == CallPhase.Admitted) d.SmcObserved(t.Call, true, _fx);
                        else if (ph != CallPhase.InSecure) Fail(h, $"{h.Name(t.Call)} is {ph.Label()}; the trace shows it in the secure world (RPC)");
                        return;
                    default:
                        if (ph == CallPhase.Admitted) d.SmcObserved(t.Call, true, _fx);
                        else if (ph != CallPhase.InSecure) { Fail(h, $"{h.Name(t.Call)} is {ph.Label()}; the trace shows its SMC returning"); return; }
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

    private int Known(Hypothesis h, in TraceEvent e, SeedKind kind)
    {
        var w = e.Waiter;
        if (h.CallOfWaiter.TryGetValue(w, out var call)) return call;
        if (_introduced.Contains(w))
        {
            // Seen begin (or seeded) earlier: in this history it has already ended, so this line cannot happen here.
            h.FailReason ??= $"waiter {w:x} is not in flight in the model (it ended or never began here), yet a line names it";
            return -1;
        }
        if (!MayPredateTheTrace(in e))
        {
            h.FailReason ??= $"waiter {w:x} has no wait_init line, and its task began another call at line {_firstBoundary[e.Task]} (so it was not in flight when the trace began)";
            return -1;
        }
        // A call in flight when the trace began: the check starts over with it (and any others met later) in place.
        _restart ??= seeds.With(w, kind);
        h.FailReason ??= $"waiter {w:x} was in flight when the trace began: checking again from the start";
        return -1;
    }

    private static void Attach(Hypothesis h, TaskInfo t, int task, int call)
    {
        if (call < 0) return;
        if (t.Call < 0) { t.Call = call; h.TaskOf[call] = task; }   // a seeded waiter meets its task
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

    private static void Observe(Hypothesis h)
    {
        var (n, sys) = h.D.InSecureByClass();
        var st = h.Stats;
        st.MaxIn = Math.Max(st.MaxIn, n + sys); st.MaxNormal = Math.Max(st.MaxNormal, n); st.MaxSys = Math.Max(st.MaxSys, sys);
        if (h.D.SysReqCount > 0) st.MaxNormalWhileSys = Math.Max(st.MaxNormalWhileSys, n);
    }

    private bool Finish()
    {
        // Triggers still pending at the end happened; apply them in line order (revising if they cannot).
        while (true)
        {
            var done = _current.Clone();
            while (done.Pending.Count > 0 && done.FailReason is null) ApplyAt(done, EarliestHead(done));
            if (done.FailReason is null)
            {
                Observe(done);
                _current = done;
                return true;
            }
            var last = _events - 1;
            if (last >= _furthest.Index)
                _furthest = (last, done.FailReason, DescribeState(_current), _window.Count > 0 ? _window[^1] : default);
            if (last < 0 || !Repair(last, toTheEnd: true)) return false;
        }
    }

    private IReadOnlyList<string> RecentBefore()
    {
        var n = (int)Math.Min(_recentCount, _recent.Length);
        return Enumerable.Range(0, n).Select(i => Describe(_recent[(_recentCount - n + i) % _recent.Length])).ToList();
    }

    private ConformanceResult Result(bool conforms, Divergence? div)
    {
        var st = _current.Stats;
        if (st.IgnoredSmc > 0) _notes.Add($"{st.IgnoredSmc} SMC line(s) outside any traced call (fast calls) ignored");
        return new ConformanceResult(source, _policy, _threads, _total, _events, conforms, div,
            new ConformanceStats(st.Calls, st.SysCalls, st.Blocks, st.Refusals, st.Wakeups, st.Absorbed, st.MaxIn, st.MaxNormal, st.MaxSys,
                st.MaxNormalWhileSys, seeds.Waiters.Count, _backtracks, st.Reorderings, st.Lost, st.CounterMismatches),
            sw.Elapsed, _notes);
    }
}
