using Hil.Workloads.Tracing.Module;

namespace Hil.Workloads.Tracing.Planning;

/// <summary>
/// What a running board says about tracing its OP-TEE driver: kernel release, the optee module's
/// functions (kallsyms), whether kprobe events may name BTF-typed arguments, whether trace
/// instances exist, which optee tracepoints there are, and the loaded module's build ID.
/// </summary>
public sealed record KernelFacts
{
    public required string Release { get; init; }
    /// <summary>Where tracefs is mounted (/sys/kernel/tracing, or the old debugfs path).</summary>
    public string Tracefs { get; init; } = "/sys/kernel/tracing";
    /// <summary>Code symbols of module optee in /proc/kallsyms (inlined helpers are absent).</summary>
    public required IReadOnlySet<string> OpteeFunctions { get; init; }
    /// <summary>/sys/kernel/btf/optee exists (CONFIG_DEBUG_INFO_BTF_MODULES).</summary>
    public bool OpteeBtf { get; init; }
    /// <summary>The probe parser takes argument names and fields (tracefs README lists &lt;argname&gt;; Linux 6.6+ with CONFIG_PROBE_EVENTS_BTF_ARGS).</summary>
    public bool BtfArgs { get; init; }
    /// <summary>Per-instance trace buffers (tracefs instances/): the tracer then leaves the main buffer alone.</summary>
    public bool Instances { get; init; } = true;
    /// <summary>Tracepoints of the optee event system present ("optee/optee_invoke_fn_begin", ...).</summary>
    public IReadOnlySet<string> Tracepoints { get; init; } = new HashSet<string>();
    /// <summary>Build ID of the loaded optee module (from its sysfs notes), when the kernel exposes it.</summary>
    public string? OpteeBuildId { get; init; }

    /// <summary>BTF-typed fetch arguments for optee functions can be used.</summary>
    public bool CanUseBtfArgs => BtfArgs && OpteeBtf;

    public const string InvokeBegin = "optee/optee_invoke_fn_begin";
    public const string InvokeEnd = "optee/optee_invoke_fn_end";

    /// <summary>
    /// The one shell command that gathers every fact (a board round trip is slow on emulated or
    /// serial-only boards); its output is KEY=VALUE lines read by <see cref="Parse"/>.
    /// </summary>
    public const string Command =
        "T=/sys/kernel/tracing; [ -e $T/kprobe_events ] || T=/sys/kernel/debug/tracing; echo tracefs=$T; " +
        "echo release=$(uname -r); " +
        "grep -E '[[:space:]]\\[optee\\]$' /proc/kallsyms | awk '$2 == \"t\" || $2 == \"T\" { print \"sym=\" $3 }'; " +
        "[ -e /sys/kernel/btf/optee ] && echo btf=1; " +
        "grep -q '<argname>' $T/README 2>/dev/null && echo btfargs=1; " +
        "[ -d $T/instances ] && echo instances=1; " +
        "for e in optee_invoke_fn_begin optee_invoke_fn_end; do [ -d $T/events/optee/$e ] && echo tracepoint=optee/$e; done; " +
        "[ -r /sys/module/optee/notes/.note.gnu.build-id ] && echo buildid=$(od -An -tx1 /sys/module/optee/notes/.note.gnu.build-id); " +
        "[ -e $T/kprobe_events ] && echo kprobes=1; true";

    public static KernelFacts Parse(string output)
    {
        string? release = null, tracefs = null, buildId = null;
        var syms = new HashSet<string>();
        var tps = new HashSet<string>();
        bool btf = false, btfArgs = false, instances = false, kprobes = false;
        foreach (var raw in output.Split('\n'))
        {
            var line = raw.Trim();
            var eq = line.IndexOf('=');
            if (eq <= 0) continue;
            var (k, v) = (line[..eq], line[(eq + 1)..].Trim());
            switch (k)
            {
                case "release": release = v; break;
                case "tracefs": tracefs = v; break;
                case "sym": syms.Add(v); break;
                case "btf": btf = v == "1"; break;
                case "btfargs": btfArgs = v == "1"; break;
                case "instances": instances = v == "1"; break;
                case "tracepoint": tps.Add(v); break;
                case "buildid": buildId = ElfBuildId.FromHexDump(v); break;
                case "kprobes": kprobes = v == "1"; break;
            }
        }
        if (string.IsNullOrEmpty(release)) throw new TracingException("board facts: no kernel release in the output of uname -r");
        if (!kprobes) throw new TracingException($"board facts: kernel {release} has no kprobe_events in tracefs (CONFIG_KPROBE_EVENTS, tracefs mounted?)");
        if (syms.Count == 0) throw new TracingException($"board facts: kernel {release}: no functions of module optee in /proc/kallsyms (is optee loaded?)");
        return new KernelFacts
        {
            Release = release, Tracefs = tracefs ?? "/sys/kernel/tracing", OpteeFunctions = syms, OpteeBtf = btf, BtfArgs = btfArgs,
            Instances = instances, Tracepoints = tps, OpteeBuildId = buildId,
        };
    }
}
