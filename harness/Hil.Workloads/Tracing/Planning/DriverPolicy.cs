namespace Hil.Workloads.Tracing.Planning;

/// <summary>
/// The call-queue policy of the OP-TEE driver a board has loaded, told from that driver's own code
/// (<see cref="CallQueueCode"/>, read from the disassembly of the optee.ko the board runs), never
/// from a board file or a kernel version. Only the two drivers Linux has shipped are recognised:
/// <c>mainline</c> (v6.8+: optee_cq_wait_init takes sys_thread and struct optee_call_queue counts
/// threads) and <c>legacy</c> (neither). Any other combination is a driver the suites cannot
/// judge, and says so.
/// </summary>
public sealed record DriverPolicy
{
    public const string Mainline = "mainline";
    public const string Legacy = "legacy";

    private DriverPolicy(string? name, string evidence)
    {
        Name = name;
        Evidence = evidence;
    }

    /// <summary>The model policy (mainline or legacy); null for a driver the suites do not know.</summary>
    public string? Name { get; }

    /// <summary>What in the code decided it, for facts.txt and failure messages.</summary>
    public string Evidence { get; }

    public bool IsKnown => Name is not null;

    /// <summary>The policy, or a failure message naming what the code showed.</summary>
    public string Require(string where) => Name ?? throw new TracingException(
        $"{where}: unknown OP-TEE driver: {Evidence}; the suites know {Mainline} (sys_thread argument and thread counters) and {Legacy} (neither)");

    public static DriverPolicy From(CallQueueCode code)
    {
        var sys = code.HasSysArgument ? "optee_cq_wait_init takes sys_thread" : "optee_cq_wait_init has no sys_thread argument";
        var counts = code.Counts
            ? $"struct optee_call_queue counts threads (total +{code.TotalOffset}, free +{code.FreeOffset}, sys_thread_req_count +{code.SysReqOffset})"
            : "no thread counters";
        var evidence = $"{sys}, {counts}";
        return (code.HasSysArgument, code.Counts) switch
        {
            (true, true) => new DriverPolicy(Mainline, evidence),
            (false, false) => new DriverPolicy(Legacy, evidence),
            // Half of the v6.8 change: a backport or an out-of-tree patch whose rules nobody modelled.
            _ => new DriverPolicy(null, evidence),
        };
    }

    public override string ToString() => IsKnown ? $"{Name} ({Evidence})" : $"unknown driver ({Evidence})";
}
