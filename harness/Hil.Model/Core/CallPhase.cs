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
    /// <summary>
    /// Woken from a sleep for a slot: wait_for_completion returned (the completion is consumed) but
    /// the task has not yet taken the lock to move itself to the tail. Its entry is still where it
    /// was, not done, so another complete_one may pick it again — and that wake-up is then erased by
    /// reinit_completion (lost).
    /// </summary>
    Waking = 7,
    /// <summary>As <see cref="Waking"/>, woken from a sleep after ETHREAD_LIMIT/BUSY (keeps its slot).</summary>
    WakingRefused = 8,
    /// <summary>Moved to the tail with its completion cleared; the admission test is re-run in a second critical section.</summary>
    Rechecking = 9,
    /// <summary>
    /// In wait_final between its two complete_one calls: out of the list, slot given back, the lock
    /// held; it had absorbed a wake-up and still owes the second complete_one that forwards it.
    /// </summary>
    Forwarding = 10,
}

public static class CallPhaseExtensions
{
    public static bool IsAsleep(this CallPhase p) => p is CallPhase.QueuedAsleep or CallPhase.RefusedAsleep;

    /// <summary>In the list (every in-flight caller, running or asleep, stays in it).</summary>
    public static bool IsInList(this CallPhase p) => p is not (CallPhase.NotArrived or CallPhase.Ended or CallPhase.Forwarding);

    /// <summary>Holds a counted slot (taken at admission, given back in wait_final).</summary>
    public static bool HoldsSlot(this CallPhase p) =>
        p is CallPhase.Admitted or CallPhase.InSecure or CallPhase.RefusedAsleep or CallPhase.WakingRefused or CallPhase.Exited;

    /// <summary>Woken and on its way through the two critical sections that follow a wake-up.</summary>
    public static bool IsWaking(this CallPhase p) => p is CallPhase.Waking or CallPhase.WakingRefused or CallPhase.Rechecking;

    public static string Label(this CallPhase p) => p switch
    {
        CallPhase.NotArrived => "not-arrived",
        CallPhase.QueuedAsleep => "blocked",
        CallPhase.Admitted => "admitted",
        CallPhase.InSecure => "in-secure-world",
        CallPhase.RefusedAsleep => "refused-asleep",
        CallPhase.Exited => "exited",
        CallPhase.Ended => "ended",
        CallPhase.Waking => "waking",
        CallPhase.WakingRefused => "waking-refused",
        CallPhase.Rechecking => "rechecking",
        CallPhase.Forwarding => "forwarding",
        _ => p.ToString(),
    };
}
