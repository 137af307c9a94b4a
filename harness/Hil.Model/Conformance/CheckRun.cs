using System.Diagnostics;
using Hil.Model.Core;

namespace Hil.Model.Conformance;

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
    private readonly List<string> _notes = [];
    private long _events;
    private Policy _policy = null!;
    private int _threads, _total;

    /// <summary>Set when a line shows the check began from a wrong picture of the calls in flight: the pass stops and the trace is read again.</summary>
    private readonly TraceStart _start = new(seeds);
    private LineJudge? _judge;
    private LineJudge Judge => _judge ??= new LineJudge(Sections, _finals, Probed, _start);

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
        if (_start.Restart is { } restart) return new(null, _start.CollectWaitersPredatingTheTrace(restart, _ahead, reader));
        var plan = _start.CollectWaitersPredatingTheTrace(seeds, _ahead, reader);
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
            if (!Advance(in e, index) && (_start.Restart is not null || !Repair(index))) return false;
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
                _finals.See(in e);
                _start.NoteBoundary(in e);
                (_protocol ??= new LineProtocol(reader.Header?.Probes)).See(in e);
            }
            else
            {
                _eof = true;
                _finals.EndOfTrace();
            }
        }
        return _ahead.Count > 0;
    }

    // The complete lines each wait_final line is followed by (read ahead with it).
    private readonly FinalLookahead _finals = new();

    private CriticalSections? _sections;
    private CriticalSections Sections => _sections ??= new CriticalSections(_finals, Probed);

    /// <summary>One line on the current history in line order, in place; false when it cannot be explained there.</summary>
    private bool Advance(in TraceEvent e, long index)
    {
        if (e.Kind == TraceKind.Mark) return true;
        if (e.Kind == TraceKind.WaitInit) _start.Introduce(e.Waiter);
        ForceStale(_current, e.Time);
        var h = _current;
        while (h.FailReason is null && h.DueIndexOf(e.Task, e.Kind) >= 0) Sections.ApplyAt(h, CriticalSections.EarliestHead(h));
        if (h.FailReason is null) Judge.Handle(h, in e);
        if (h.FailReason is not null) return Failed(in e, index, h.FailReason, h);
        LineJudge.Observe(h);
        return true;
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
            if (--_replayBudget < 0 || _start.Restart is not null) return false;
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
        while (done.Pending.Count > 0 && done.FailReason is null) Sections.ApplyAt(done, CriticalSections.EarliestHead(done));
        if (done.FailReason is null && done.UnexplainedRead(double.PositiveInfinity) is { } why) Fail(done, why);
        return done.FailReason is null;
    }

    /// <summary>Every order of the line's task's pending critical sections (with other tasks' before them) that explains it; line order first.</summary>
    private List<Hypothesis> AllOrders(in TraceEvent e, long index)
    {
        var survivors = new List<Hypothesis>(2);
        if (e.Kind == TraceKind.Mark) { survivors.Add(_current); return survivors; }
        if (e.Kind == TraceKind.WaitInit) _start.Introduce(e.Waiter);
        var start = _current.Clone();
        ForceStale(start, e.Time);
        if (start.FailReason is not null) { Failed(in e, index, start.FailReason, start); return survivors; }
        string? reason = null;
        var lineOrderFailed = false;
        var first = true;
        foreach (var b in Expand(start, e.Task, e.Kind, readsCounters: false))
        {
            if (b.FailReason is null) Judge.Handle(b, in e);
            if (b.FailReason is null) { LineJudge.Observe(b); survivors.Add(b); }
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
            _finals.ForgetBefore(first);
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
            _start.Introduce(w);
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
            if (stale < 0) break;
            // Its task's earlier steps ran before it.
            Sections.ApplyAt(h, h.PendingIndexOf(h.Pending[stale].Task));
        }
        // A counter read that nothing within the window explained: this history is not the board's.
        if (h.FailReason is null && h.UnexplainedRead(limit) is { } why) Fail(h, why);
    }

    private static bool ReadsCounters(in TraceEvent e) => e.Free >= 0 || e.SysReq >= 0 || e.Done >= 0;

    private List<Hypothesis> Expand(Hypothesis h, int task, TraceKind line, bool readsCounters)
    {
        var own = h.DueIndexOf(task, line);
        var others = h.Pending.Any(p => p.Task != task);
        if (!others || (own < 0 && !readsCounters))
        {
            while (h.FailReason is null && h.DueIndexOf(task, line) is var i and >= 0) Sections.ApplyAt(h, i);
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
            Sections.ApplyAt(next, i);
            Search(next, task, line, readsCounters, results, seen, ref budget);
        }
    }

    private static void Fail(Hypothesis h, string reason) => h.FailReason ??= reason;

    private bool Finish()
    {
        // Triggers still pending at the end happened; apply them in line order (revising if they cannot).
        while (true)
        {
            var done = _current.Clone();
            while (done.Pending.Count > 0 && done.FailReason is null) Sections.ApplyAt(done, CriticalSections.EarliestHead(done));
            // Reads still open at the end: no later state of the trace explains them.
            if (done.FailReason is null && done.UnexplainedRead(double.PositiveInfinity) is { } why) Fail(done, why);
            if (done.FailReason is null)
            {
                LineJudge.Observe(done);
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
