namespace Hil.Model.Conformance;

/// <summary>
/// What one trace line reports. Probe points on a board (kprobes on call.c, the optee invoke_fn
/// tracepoints) map one to one onto these; see docs/trace-format.md.
/// </summary>
public enum TraceKind : byte
{
    /// <summary>Entry of optee_cq_wait_init (before its lock): the caller is about to join the list.</summary>
    WaitInit,
    /// <summary>optee_cq_wait_init returned: the caller was let through.</summary>
    Admitted,
    /// <summary>Entry of optee_cq_wait_for_completion: the caller goes to sleep.</summary>
    Block,
    /// <summary>wait_for_completion returned inside optee_cq_wait_for_completion: the caller runs again.</summary>
    Woken,
    /// <summary>The complete() call of optee_cq_complete_one: which waiter got the wake-up.</summary>
    Complete,
    /// <summary>Entry of optee_cq_wait_final (before its lock): the caller is done.</summary>
    Final,
    /// <summary>optee_invoke_fn_begin: an SMC is issued (a call, an RPC return, or a fast call).</summary>
    SmcBegin,
    /// <summary>optee_invoke_fn_end: the SMC returned (ok, RPC, ETHREAD_LIMIT/BUSY).</summary>
    SmcEnd,
    /// <summary>tee_client_system_session()/optee_system_session returned.</summary>
    SysRegister,
    /// <summary>Start of closing a session (optee_close_session_helper); sys=1 for a system session.</summary>
    CloseBegin,
    /// <summary>A label written by the test (ignored by the model, kept in reports).</summary>
    Mark,
    Header,
}

public enum SmcCall : byte { Unknown, Call, RpcReturn, Fast }

public enum SmcResult : byte { Unknown, Ok, Rpc, ThreadLimit, Error }

/// <summary>One parsed trace line. Optional numeric fields are -1 when absent.</summary>
public struct TraceEvent
{
    public long Line;
    public double Time;
    public int Task;
    public TraceKind Kind;
    public ulong Waiter;
    public bool HasWaiter;
    public sbyte Sys;
    public int Free;
    public int SysReq;
    public int Total;
    public sbyte Done;
    public SmcCall Smc;
    public SmcResult Result;
    public sbyte Ok;
    public string? Session;
    public string? Text;

    public void Reset()
    {
        this = default;
        Task = -1; Sys = -1; Free = -1; SysReq = -1; Total = -1; Done = -1; Ok = -1;
    }
}

/// <summary>The first line of a trace, optional: what the board is and which probes were set.</summary>
public sealed record TraceHeader(
    string? Format,
    string? Policy,
    int? Threads,
    int? DriverThreads,
    int? SysReq,
    IReadOnlySet<TraceKind>? Probes,
    string? Board,
    string? Kernel);
