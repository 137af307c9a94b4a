namespace Hil.Model.Conformance;

/// <summary>
/// The complete lines a wait_final line is followed by, in its task, before any other line of that
/// task: they come from inside that wait_final, so they are every wake-up it handed out, in order.
/// Known when the line is read (ahead of judging it), so a history that makes the wait_final wake
/// someone else, or anyone when it shows none, is dropped where it happens — not at the task's next
/// call, by which time a search for another order would have to undo hundreds of lines.
/// </summary>
internal sealed class FinalLookahead
{
    /// <summary>What one wait_final line was followed by.</summary>
    public sealed class InsideFinal
    {
        public readonly List<(ulong Waiter, long Line, double Time)> Targets = new(2);
        /// <summary>The task's next other line (or the end of the trace) has been read: no more complete lines.</summary>
        public bool Closed;
    }

    private readonly Dictionary<long, InsideFinal> _byLine = [];   // by the final's line
    private readonly Dictionary<int, InsideFinal> _open = [];      // by task, until its next other line
    private readonly Queue<long> _lines = new();                   // to forget them once out of the window

    /// <summary>The wait_final of that line, or null (not a final line, or forgotten).</summary>
    public InsideFinal? Of(long finalLine) => _byLine.GetValueOrDefault(finalLine);

    /// <summary>Each line as it is read, in line order.</summary>
    public void See(in TraceEvent e)
    {
        if (e.Task < 0 || e.Kind == TraceKind.Mark) return;
        if (_open.TryGetValue(e.Task, out var open))
        {
            if (e.Kind == TraceKind.Complete)
            {
                open.Targets.Add((e.Waiter, e.Line, e.Time));
                return;
            }
            open.Closed = true;
            _open.Remove(e.Task);
        }
        if (e.Kind != TraceKind.Final) return;
        var inside = new InsideFinal();
        _byLine[e.Line] = inside;
        _open[e.Task] = inside;
        _lines.Enqueue(e.Line);
    }

    /// <summary>No more lines: every wait_final still open has shown all its complete lines.</summary>
    public void EndOfTrace()
    {
        foreach (var open in _open.Values) open.Closed = true;
        _open.Clear();
    }

    /// <summary>Lines before <paramref name="line"/> can no longer be replayed: their finals are forgotten.</summary>
    public void ForgetBefore(long line)
    {
        while (_lines.Count > 0 && _lines.Peek() < line) _byLine.Remove(_lines.Dequeue());
    }
}
