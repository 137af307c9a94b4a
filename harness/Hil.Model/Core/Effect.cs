namespace Hil.Model.Core;

/// <summary>What a transition did, in order; simulate, explore and the trace checker read these.</summary>
public enum EffectKind : byte
{
    Arrived,
    /// <summary>Let through to the secure world (took a counted slot when counting).</summary>
    Admitted,
    /// <summary>Went to sleep in the driver: no slot for it (counting policies).</summary>
    Blocked,
    /// <summary>The SMC got a secure thread.</summary>
    Entered,
    /// <summary>The SMC found no free secure thread: ETHREAD_LIMIT (SMC) or BUSY (FF-A); the caller sleeps.</summary>
    Refused,
    /// <summary>complete_one() set the completion of a sleeping caller: a wake-up delivered.</summary>
    Woken,
    /// <summary>complete_one() set the completion of a caller that is not asleep: the wake-up is absorbed until it ends.</summary>
    Absorbed,
    /// <summary>A woken caller moved itself to the tail (reinit_completion; an admission re-check follows for a slot sleeper).</summary>
    Reevaluated,
    /// <summary>A wake-up set on a caller between its waking and its move to the tail was erased by reinit_completion.</summary>
    WakeupLost,
    /// <summary>The secure thread was released (the call's last SMC returned).</summary>
    Exited,
    /// <summary>optee_cq_wait_final done.</summary>
    Ended,
    /// <summary>An ended caller forwards a wake-up it had absorbed (a second complete_one).</summary>
    Forwarded,
    SystemRegistered,
    SystemRefused,
    SystemUnregistered,
    /// <summary>An invariant of the model broke (free &lt; 0, over-admission, the total-1 bound).</summary>
    InvariantBroken,
}

/// <summary>One effect: the call (or session for registration effects) it concerns and an optional detail.</summary>
public readonly record struct Effect(EffectKind Kind, int Subject, string? Detail = null);
