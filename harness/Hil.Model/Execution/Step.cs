namespace Hil.Model.Execution;

/// <summary>One atomic step of a scenario's tasks (one critical section or one SMC).</summary>
public enum StepKind : byte
{
    /// <summary>The client's next call enters wait_init (Subject = client).</summary>
    Arrive,
    /// <summary>The client calls tee_client_system_session() (Subject = client).</summary>
    Register,
    /// <summary>An admitted call issues its SMC (Subject = call).</summary>
    Smc,
    /// <summary>A sleeping call whose completion is done returns from wait_for_completion (Subject = call).</summary>
    Wake,
    /// <summary>A woken call moves itself to the tail under the lock, clearing its completion (Subject = call).</summary>
    Requeue,
    /// <summary>A woken call waiting for a slot re-runs the admission test under the lock (Subject = call).</summary>
    Recheck,
    /// <summary>The call's last SMC returns and frees its secure thread (Subject = call).</summary>
    Exit,
    /// <summary>wait_final up to its first complete_one; for a CLOSE of a system session also the uncounting unless a forward is owed (Subject = call).</summary>
    End,
    /// <summary>wait_final's second complete_one, forwarding an absorbed wake-up; then the uncounting of a closed system session (Subject = call).</summary>
    Forward,
}

public readonly record struct Step(StepKind Kind, int Subject)
{
    public int Encode() => ((int)Kind << 24) | Subject;
    public static Step Decode(int v) => new((StepKind)(v >> 24), v & 0xFFFFFF);
}
