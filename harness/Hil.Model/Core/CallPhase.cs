namespace Hil.Model.Core;

/// <summary>Where one call stands in the driver and the secure world.</summary>
public enum CallPhase : byte
{
    /// <summary>Not yet in optee_cq_wait_init.</summary>
    NotArrived = 0,
    /// <summary>In the list, asleep in the driver waiting for a counted slot (counting policies only).</summary>
    QueuedAsleep = 1,
    /// <summary>Allowed to the secure world (holds a counted slot when the policy counts); SMC not made yet.</summary>
    Admitted = 2,
    /// <summary>Holds a secure thread (ACTIVE, or SUSPENDED while an RPC is served by the same task).</summary>
    InSecure = 3,
    /// <summary>The SMC was refused (ETHREAD_LIMIT/BUSY); asleep until its completion is done, then retries the same SMC. Keeps its counted slot.</summary>
    RefusedAsleep = 4,
    /// <summary>Secure thread released, optee_cq_wait_final not done yet.</summary>
    Exited = 5,
    /// <summary>optee_cq_wait_final done: out of the list.</summary>
    Ended = 6,
}

public static class CallPhaseExtensions
{
    public static bool IsAsleep(this CallPhase p) => p is CallPhase.QueuedAsleep or CallPhase.RefusedAsleep;

    /// <summary>In the list (every in-flight caller, running or asleep, stays in it).</summary>
    public static bool IsInList(this CallPhase p) => p is not (CallPhase.NotArrived or CallPhase.Ended);

    /// <summary>Holds a counted slot (taken at admission, given back in wait_final).</summary>
    public static bool HoldsSlot(this CallPhase p) =>
        p is CallPhase.Admitted or CallPhase.InSecure or CallPhase.RefusedAsleep or CallPhase.Exited;

    public static string Label(this CallPhase p) => p switch
    {
        CallPhase.NotArrived => "not-arrived",
        CallPhase.QueuedAsleep => "blocked",
        CallPhase.Admitted => "admitted",
        CallPhase.InSecure => "in-secure-world",
        CallPhase.RefusedAsleep => "refused-asleep",
        CallPhase.Exited => "exited",
        CallPhase.Ended => "ended",
        _ => p.ToString(),
    };
}
