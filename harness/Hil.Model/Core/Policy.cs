namespace Hil.Model.Core;

/// <summary>How the driver picks the waiter that a freed slot wakes (optee_cq_complete_one).</summary>
public enum WakeOrder
{
    /// <summary>First entry of the list whose completion is not done.</summary>
    Fifo,
    /// <summary>First not-done entry with the sys flag, else first not-done entry (v6.8+).</summary>
    SystemFirst,
}

/// <summary>Whether and when tee_client_system_session() succeeds.</summary>
public enum SystemSessionSupport
{
    /// <summary>The call does not exist or always fails (before v6.8, FF-A).</summary>
    Unsupported,
    /// <summary>Always succeeds (the v9 patch).</summary>
    Always,
    /// <summary>Succeeds only when the driver counts more than one thread (merged v6.8).</summary>
    WhenMoreThanOneThread,
}

/// <summary>
/// One policy of the spec's table: the admission rule, the wake-up rule and what the secure world
/// answers when it has no free thread. Immutable; the rules are data so that a what-if policy is a
/// new instance, not new code.
/// </summary>
public sealed record Policy(
    string Name,
    string Description,
    bool CountsThreads,
    bool ReserveAlways,
    WakeOrder WakeOrder,
    SystemSessionSupport SystemSessions,
    SecureRefusal Refusal)
{
    /// <summary>Before v6.8 (Debian 6.1): no counting, OP-TEE answers ETHREAD_LIMIT, FIFO wake-ups.</summary>
    public static readonly Policy Legacy = new("legacy", "before v6.8: no counting, retry on ETHREAD_LIMIT, FIFO wake-up",
        CountsThreads: false, ReserveAlways: false, WakeOrder.Fifo, SystemSessionSupport.Unsupported, SecureRefusal.EthreadLimit);

    /// <summary>The seed patch (never merged): one slot always kept for system callers.</summary>
    public static readonly Policy V9 = new("v9", "seed patch v9: counting, last slot always reserved for system callers, FIFO wake-up",
        CountsThreads: true, ReserveAlways: true, WakeOrder.Fifo, SystemSessionSupport.Always, SecureRefusal.EthreadLimit);

    /// <summary>v6.8 and later (Debian 6.12): last slot kept only while a system session is registered.</summary>
    public static readonly Policy Mainline = new("mainline", "v6.8+: counting, last slot kept while system sessions exist, system waiters woken first",
        CountsThreads: true, ReserveAlways: false, WakeOrder.SystemFirst, SystemSessionSupport.WhenMoreThanOneThread, SecureRefusal.EthreadLimit);

    /// <summary>What-if: mainline admission with FIFO wake-up (close to v10).</summary>
    public static readonly Policy MainlineFifo = new("mainline-fifo", "what-if: mainline admission with FIFO wake-up (close to v10)",
        CountsThreads: true, ReserveAlways: false, WakeOrder.Fifo, SystemSessionSupport.WhenMoreThanOneThread, SecureRefusal.EthreadLimit);

    /// <summary>FF-A ABI: no counting, OP-TEE answers BUSY, system sessions refused.</summary>
    public static readonly Policy Ffa = new("ffa", "FF-A ABI: no counting, retry on BUSY, FIFO wake-up, no system sessions",
        CountsThreads: false, ReserveAlways: false, WakeOrder.Fifo, SystemSessionSupport.Unsupported, SecureRefusal.Busy);

    public static IReadOnlyList<Policy> All { get; } = [Legacy, V9, Mainline, MainlineFifo, Ffa];

    public static Policy? Find(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));

    public static string Names => string.Join(", ", All.Select(p => p.Name));

    /// <summary>
    /// The thread count the driver works with: the secure world's count when the policy counts
    /// (GET_THREAD_COUNT answered at probe), else 0 ("not tracking").
    /// </summary>
    public int DriverTotalFor(int secureThreads) => CountsThreads ? secureThreads : 0;

    /// <summary>
    /// Free slots a caller needs to see strictly exceeded before it may take one
    /// (the kernel's free_thread_threshold).
    /// </summary>
    public int Threshold(bool sys, int sysReqCount) =>
        AdmissionOverride?.Invoke(sys, sysReqCount) ?? (sys ? 0 : ReserveAlways ? 1 : sysReqCount > 0 ? 1 : 0);

    /// <summary>
    /// Fault injection only: replaces the threshold rule (sys, sys_req_count) → threshold, so
    /// tests can prove the invariant checks fire on a wrong policy. Never set by the product.
    /// </summary>
    public Func<bool, int, int>? AdmissionOverride { get; init; }

    public bool SystemSessionAllowed(int driverTotal) => SystemSessions switch
    {
        SystemSessionSupport.Always => true,
        SystemSessionSupport.WhenMoreThanOneThread => driverTotal > 1,
        _ => false,
    };

    public override string ToString() => Name;
}

/// <summary>What an SMC that finds no free secure thread returns.</summary>
public enum SecureRefusal
{
    /// <summary>OPTEE_SMC_RETURN_ETHREAD_LIMIT (SMC ABI).</summary>
    EthreadLimit,
    /// <summary>BUSY (FF-A).</summary>
    Busy,
}
