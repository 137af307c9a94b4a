using Hil.Model.Core;

namespace Hil.Model.Scenarios;

/// <summary>
/// A workload for the model: a policy, the secure world's thread count and clients. A client is
/// one task: its operations run one after another, each no earlier than its `at` time.
/// </summary>
public sealed record Scenario(
    string Name,
    string? Description,
    Policy Policy,
    int Threads,
    int? DriverThreads,
    IReadOnlyList<ClientSpec> Clients,
    string Source)
{
    /// <summary>Every call (invoke or close) in client order, then op order; their index is the model's call id.</summary>
    public IReadOnlyList<CallSpec> Calls { get; } = Clients.SelectMany(c => c.Ops).OfType<CallSpec>().ToList();

    /// <summary>Every session in client order; their index is the model's session id.</summary>
    public IReadOnlyList<SessionSpec> Sessions { get; } = Clients.SelectMany(c => c.Sessions).ToList();

    public int DriverTotal => DriverThreads ?? Policy.DriverTotalFor(Threads);

    public Scenario WithPolicy(Policy policy) => this with { Policy = policy };

    public string CallName(int call) => Calls[call].Name;
}

public sealed record ClientSpec(int Index, string Name, IReadOnlyList<SessionSpec> Sessions, IReadOnlyList<OpSpec> Ops);

/// <summary>A TEE session; `System` = tee_client_system_session() called right after it opened.</summary>
public sealed record SessionSpec(int Id, string Name, int Client, bool System);

/// <summary>One step of a client. Times are microseconds.</summary>
public abstract record OpSpec(int Client, int Index, string Label, int Session, long At);

/// <summary>
/// A call through the driver: an invoke, or the CLOSE of its session (a system call when the
/// session is a system one; the session is uncounted after it). `Needs`: calls that must have
/// ended before this one can finish (an RPC served by another call, as in the SCMI chain).
/// </summary>
public sealed record CallSpec(int Client, int Index, string Label, int Session, long At, long Hold,
    IReadOnlyList<int> Needs, bool IsClose, int CallId, string Name)
    : OpSpec(Client, Index, Label, Session, At);

/// <summary>tee_client_system_session() on a session at a point of the client's program (not a call).</summary>
public sealed record RegisterSpec(int Client, int Index, string Label, int Session, long At)
    : OpSpec(Client, Index, Label, Session, At);
