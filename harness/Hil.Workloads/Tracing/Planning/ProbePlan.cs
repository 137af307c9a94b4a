using Hil.Model.Conformance;

namespace Hil.Workloads.Tracing.Planning;

/// <summary>
/// One kprobe event to arm: its name (unique per tracing session), whether it is a return probe,
/// and the probe text after "p:GROUP/NAME " — preferred first, then fall-backs the kernel may
/// accept instead (BTF-typed arguments are tried before computed register/offset ones).
/// </summary>
/// <param name="Kind">The trace-format event each hit becomes.</param>
/// <param name="WaiterFromCompletion">The probe reads &amp;w-&gt;c in field "c": w = c minus this offset.</param>
public sealed record PlannedProbe(string Name, TraceKind Kind, bool Return, IReadOnlyList<string> Definitions, int? WaiterFromCompletion = null)
{
    public string Command(string group, int choice = 0, string? eventName = null) => $"{(Return ? "r" : "p")}:{group}/{eventName ?? Name} {Definitions[choice]}";

    /// <summary>The event's name in one tracing session: unique on the board, since kprobe_profile lists events without their group.</summary>
    public string EventName(string sessionToken) => $"{Name}_{sessionToken}";
}

/// <summary>A tracepoint to enable ("system/event") and the trace-format event it becomes.</summary>
public sealed record PlannedTracepoint(string Event, TraceKind Kind)
{
    /// <summary>The name ftrace prints on each line.</summary>
    public string PrintedName => Event[(Event.IndexOf('/') + 1)..];
}

/// <summary>
/// Everything to arm on one kernel to trace its call queue, each mapped to a hil-cq-trace event,
/// and why (the facts and the code analysis it came from).
/// </summary>
public sealed record ProbePlan(
    KernelFacts Facts,
    CallQueueCode Code,
    IReadOnlyList<PlannedProbe> Probes,
    IReadOnlyList<PlannedTracepoint> Tracepoints,
    IReadOnlyList<string> Notes)
{
    /// <summary>The event kinds the trace will contain (the header's "probes": the checker relies on each).</summary>
    public IReadOnlyList<TraceKind> Kinds =>
        Probes.Select(p => p.Kind).Concat(Tracepoints.Select(t => t.Kind)).Distinct().Order().ToList();

    /// <summary>The kprobe_events lines with their preferred definitions, as a person would write them.</summary>
    public IEnumerable<string> Lines(string group) => Probes.Select(p => p.Command(group));
}
