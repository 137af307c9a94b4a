namespace Hil.Model.Conformance;

/// <summary>
/// What was going on when the trace began: calls already in flight (their waiters are met without
/// a wait_init) and system sessions registered before it. A pass that meets one it did not expect
/// asks for another pass (<see cref="Restart"/>) with every such waiter of the whole trace in place.
/// </summary>
internal sealed class TraceStart(SeedPlan seeds)
{
    public SeedPlan Seeds { get; } = seeds;

    /// <summary>Set when this pass began from a wrong picture: the plan for the next pass.</summary>
    public SeedPlan? Restart { get; set; }

    /// <summary>A sys_register line was met: sys_req changes are the trace's own from there.</summary>
    public bool RegisterSeen { get; set; }

    // Waiters met with a wait_init (or seeded): a later line naming one is judged, not seeded.
    private readonly HashSet<ulong> _introduced = [];

    public void Introduce(ulong waiter) => _introduced.Add(waiter);

    /// <summary>
    /// Before calling a divergence, read on: every waiter that shows up later without a wait_init
    /// was in flight from the start (unless its task began another call before), and the check
    /// starts over with all of them in place — at once, so a trace starting with a hundred calls in
    /// flight costs one more pass, not a hundred.
    /// </summary>
    public SeedPlan CollectWaitersPredatingTheTrace(SeedPlan plan, IEnumerable<TraceEvent> ahead, TraceReader reader)
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
        foreach (var a in ahead) Look(in a);
        var ev = new TraceEvent();
        while (reader.Next(ref ev)) Look(in ev);
        return added.Count == 0 ? plan : plan.WithAll(added);
    }

    // Per task, the line of its first wait_init or final: a waiter the task names after that line
    // cannot be a call that was in flight when the trace began (its wait_init line is missing).
    // By task id (small numbers from the reader); long.MaxValue: none yet.
    private readonly List<long> _firstBoundary = [];

    public void NoteBoundary(in TraceEvent e)
    {
        if (e.Kind is not (TraceKind.WaitInit or TraceKind.Final) || e.Task < 0) return;
        while (_firstBoundary.Count <= e.Task) _firstBoundary.Add(long.MaxValue);
        if (_firstBoundary[e.Task] == long.MaxValue) _firstBoundary[e.Task] = e.Line;
    }

    /// <summary>A complete line names another task's waiter; the others name the line's own task's.</summary>
    public bool MayPredateTheTrace(in TraceEvent e) =>
        e.Kind == TraceKind.Complete || e.Task < 0 || e.Task >= _firstBoundary.Count || _firstBoundary[e.Task] >= e.Line;

    /// <summary>The call a line's waiter is in this history; -1 (and the history failed) when it is none, or when the check must start over with it in flight from the start.</summary>
    public int Known(Hypothesis h, in TraceEvent e, SeedKind kind)
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
        Restart ??= Seeds.With(w, kind);
        h.FailReason ??= $"waiter {w:x} was in flight when the trace began: checking again from the start";
        return -1;
    }

}
