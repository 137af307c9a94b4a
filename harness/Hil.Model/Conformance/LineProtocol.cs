namespace Hil.Model.Conformance;

/// <summary>
/// The order in which the tracer writes one task's lines, whatever the model says: a call is
/// wait_init, then (block, woken)* until admitted, then smc_begin / smc_end pairs (an RPC return
/// after each "rpc", a block and woken after each refusal), then final and the complete lines from
/// inside it. With every one of those probes armed, a line out of that order means a line is
/// missing (or was moved): the trace is wrong before any question of policy. Also one rule across
/// tasks: a caller's woken line comes after a complete line naming it (complete() runs before
/// wait_for_completion can return, and the trace is in timestamp order).
///
/// Runs once per line in line order, as lines are read; the first violation is kept and reported
/// as the divergence at that line (unless the model diverges earlier).
/// </summary>
internal sealed class LineProtocol
{
    private enum At : byte { Unknown, Idle, Arrived, Asleep, Woken, Admitted, InSmc, InRpc, Refused, Returned, Finished }

    private sealed class TaskState
    {
        public At At;
        public bool InFastCall;
        public long Since;   // the line that put it there
    }

    private static readonly TraceKind[] Required =
        [TraceKind.WaitInit, TraceKind.Admitted, TraceKind.Block, TraceKind.Woken, TraceKind.Final, TraceKind.SmcBegin, TraceKind.SmcEnd];

    private readonly Dictionary<int, TaskState> _tasks = [];
    // Per waiter: complete lines naming it since its wait_init or its last woken (-1: met first in
    // another line than wait_init, so a wake-up may predate the trace).
    private readonly Dictionary<ulong, int> _completes = [];
    private readonly bool _checkCompletes;

    public bool Enabled { get; }

    /// <summary>The first line out of order: its number and what was expected instead.</summary>
    public (long Line, string Reason)? Violation { get; private set; }

    public LineProtocol(IReadOnlySet<TraceKind>? probes)
    {
        // Only a header that lists the probes says which lines must be there.
        Enabled = probes is not null && Required.All(probes.Contains);
        _checkCompletes = Enabled && probes!.Contains(TraceKind.Complete);
    }

    public void See(in TraceEvent e)
    {
        if (!Enabled || Violation is not null || e.Task < 0 || e.Kind is TraceKind.Mark or TraceKind.Header) return;
        if (!_tasks.TryGetValue(e.Task, out var t))
        {
            // A task first met in the middle of a call (the trace began while it was in flight).
            t = new TaskState { At = e.Kind is TraceKind.WaitInit or TraceKind.CloseBegin or TraceKind.SysRegister ? At.Idle : At.Unknown, Since = e.Line };
            _tasks[e.Task] = t;
        }
        if (_checkCompletes) Wakeups(in e);
        if (Violation is not null) return;
        if (e.Kind == TraceKind.SmcBegin && e.Smc == SmcCall.Fast) { t.InFastCall = true; return; }
        if (e.Kind == TraceKind.SmcEnd && t.InFastCall) { t.InFastCall = false; return; }
        var next = Next(t.At, in e);
        if (next is { } n) { t.At = n; t.Since = e.Line; return; }
        Violation = (e.Line, $"the tracer writes every probe hit of a call, and {TraceReader.Name(e.Kind)} cannot follow {Expected(t.At)} (line {t.Since}): {Missing(t.At)} line missing or out of order");
    }

    private static At? Next(At at, in TraceEvent e) => (at, e.Kind) switch
    {
        (At.Unknown, TraceKind.Final) => At.Finished,
        (At.Unknown, TraceKind.WaitInit) => At.Arrived,
        (At.Unknown, _) => At.Unknown,
        (At.Idle or At.Finished, TraceKind.WaitInit) => At.Arrived,
        (At.Idle or At.Finished, TraceKind.CloseBegin or TraceKind.SysRegister) => At.Idle,
        (At.Finished, TraceKind.Complete) => At.Finished,
        (At.Arrived or At.Woken, TraceKind.Block) => At.Asleep,
        (At.Arrived or At.Woken, TraceKind.Admitted) => At.Admitted,
        (At.Asleep, TraceKind.Woken) => At.Woken,
        // Woken after a refused SMC: the same SMC is issued again (no new wait_init, no admitted line).
        (At.Admitted or At.Woken, TraceKind.SmcBegin) when e.Smc == SmcCall.Call => At.InSmc,
        (At.InRpc, TraceKind.SmcBegin) when e.Smc == SmcCall.RpcReturn => At.InSmc,
        (At.InSmc, TraceKind.SmcEnd) => e.Result switch
        {
            SmcResult.Rpc => At.InRpc,
            SmcResult.ThreadLimit => At.Refused,
            _ => At.Returned,
        },
        (At.Refused, TraceKind.Block) => At.Asleep,
        (At.Returned, TraceKind.Final) => At.Finished,
        _ => null,
    };

    private static string Expected(At at) => at switch
    {
        At.Idle => "a task with no call in flight",
        At.Arrived => "its wait_init",
        At.Asleep => "its block",
        At.Woken => "its woken",
        At.Admitted => "its admitted",
        At.InSmc => "its smc_begin",
        At.InRpc => "its smc_end (rpc)",
        At.Refused => "its smc_end (ethread_limit/busy)",
        At.Returned => "its smc_end",
        At.Finished => "its final",
        _ => "its last line",
    };

    private static string Missing(At at) => at switch
    {
        At.Idle or At.Finished => "a wait_init",
        At.Arrived => "an admitted or block",
        At.Asleep => "a woken",
        At.Woken => "an admitted, block or smc_begin",
        At.Admitted => "an smc_begin",
        At.InSmc => "an smc_end",
        At.InRpc => "an smc_begin (rpc_return)",
        At.Refused => "a block",
        At.Returned => "a final",
        _ => "a",
    };

    private void Wakeups(in TraceEvent e)
    {
        switch (e.Kind)
        {
            case TraceKind.WaitInit:
                _completes[e.Waiter] = 0;
                break;
            case TraceKind.Complete:
                _completes[e.Waiter] = Math.Max(0, _completes.GetValueOrDefault(e.Waiter, -1)) + 1;
                break;
            case TraceKind.Woken:
                var n = _completes.GetValueOrDefault(e.Waiter, -1);
                if (n == 0)
                    Violation = (e.Line, $"no complete line names w={e.Waiter:x} since it began or last woke; complete() runs before wait_for_completion can return, so its line comes first (a complete line missing or moved)");
                _completes[e.Waiter] = 0;
                break;
            case TraceKind.Final:
                _completes.Remove(e.Waiter);
                break;
        }
    }
}
