using System.Globalization;
using System.Text.Json;
using Hil.Model.Conformance;
using Hil.Workloads.Tracing.Ftrace;
using Hil.Workloads.Tracing.Planning;

namespace Hil.Workloads.Tracing.Conversion;

/// <summary>How a printed event name becomes a trace-format event.</summary>
/// <param name="WaiterFromCompletion">The line's "c" is &amp;w-&gt;c: the waiter is c minus this offset.</param>
public sealed record EventMapping(TraceKind Kind, int? WaiterFromCompletion = null);

/// <summary>The header of a converted trace: the board's facts (from the caller) and what the tracer armed.</summary>
public sealed record CqTraceHeader(string Policy, int Threads, string Kernel, IReadOnlyList<TraceKind> Probes, string? Board = null, int? DriverThreads = null);

/// <summary>What a conversion saw, for reports and for refusing an incomplete trace.</summary>
public sealed class ConversionStats
{
    public long Lines;
    public long Events;
    public readonly Dictionary<TraceKind, long> ByKind = [];
    /// <summary>Events the trace buffer lost (LOST notices, overwritten entries): the trace is incomplete.</summary>
    public long LostEvents;
    /// <summary>CPUs whose oldest events were overwritten (count unknown beyond the entries header).</summary>
    public readonly SortedSet<int> OverwrittenCpus = [];
    /// <summary>Lines of events this session did not arm (another user's events in a shared buffer).</summary>
    public long Foreign;
    /// <summary>Lines before the session's begin marker or after its end marker.</summary>
    public long OutsideSession;
    public decimal? First, Last;
    public bool SessionStartSeen;
    /// <summary>The session's begin marker is not in the text: its start was overwritten or never written.</summary>
    public bool SessionStartMissing;

    public long Count(TraceKind k) => ByKind.GetValueOrDefault(k);
    public bool Lossy => LostEvents > 0 || OverwrittenCpus.Count > 0 || SessionStartMissing;

    public override string ToString() =>
        $"{Events:N0} events ({string.Join(", ", ByKind.OrderBy(k => k.Key).Select(k => $"{TraceReader.Name(k.Key)} {k.Value:N0}"))}); " +
        $"lost {LostEvents}{(OverwrittenCpus.Count > 0 ? $" (CPU buffer overwritten: {string.Join(",", OverwrittenCpus)})" : "")}; " +
        $"span {(First is { } f && Last is { } l ? $"{l - f:0.000} s" : "-")}";
}

/// <summary>
/// Turns ftrace text (the tracer's kprobes and the optee tracepoints) into hil-cq-trace/1 JSON lines,
/// in the buffer's order. Values are carried over as the kernel printed them; the only
/// computations are the ones the format defines: a wake-up target's waiter from its completion
/// address, the SMC kind from the function ID and the result from a0 (OP-TEE's SMC ABI).
/// </summary>
/// <param name="sharedBuffer">The text comes from the main buffer, shared with whoever traced before: its entry counts and
/// overwrite notices describe that history, so only what is inside the session's markers counts.</param>
public sealed class CqTraceConverter(IReadOnlyDictionary<string, EventMapping> events, string? sessionMarker = null, bool sharedBuffer = false)
{
    public const string Format = "hil-cq-trace/1";
    public const string MarkerEvent = "tracing_mark_write";

    /// <summary>OP-TEE SMC ABI: bit 31 of a function ID marks a fast call; function 3 returns from an RPC.</summary>
    private const uint FastCallBit = 0x8000_0000;
    private const uint FunctionMask = 0xFFFF;
    private const uint ReturnFromRpc = 3;
    /// <summary>OP-TEE SMC ABI results in a0: 0 = OK, 1 = ETHREAD_LIMIT, 0xFFFF_xxxx = an RPC request (but 0xFFFFFFFF = unknown function).</summary>
    private const ulong ThreadLimit = 1;
    private const ulong RpcPrefixMask = 0xFFFF_0000, RpcPrefix = 0xFFFF_0000, UnknownFunction = 0xFFFF_FFFF;

    /// <summary>The converter for a session that armed <paramref name="plan"/> (event names carry the session token).</summary>
    public static CqTraceConverter For(ProbePlan plan, string sessionToken, bool sharedBuffer = false) => new(
        plan.Probes.Select(p => KeyValuePair.Create(p.EventName(sessionToken), new EventMapping(p.Kind, p.WaiterFromCompletion)))
            .Concat(plan.Tracepoints.Select(t => KeyValuePair.Create(t.PrintedName, new EventMapping(t.Kind))))
            .ToDictionary(),
        sessionToken, sharedBuffer);

    /// <summary>Printed event name → trace-format event.</summary>
    public IReadOnlyDictionary<string, EventMapping> Events => events;

    public string BeginMarker => $"hil-trace begin {sessionMarker}";
    public string EndMarker => $"hil-trace end {sessionMarker}";

    public ConversionStats Convert(TextReader ftrace, CqTraceHeader header, Stream output)
    {
        var stats = new ConversionStats();
        // First pass over the text is the only one: the header needs the lost count, so the
        // events are written after it from a buffer of the converted lines.
        using var body = new MemoryStream();
        using (var w = new Utf8JsonWriter(body, new JsonWriterOptions { SkipValidation = true }))
        {
            var inSession = sessionMarker is null;
            string? text;
            long n = 0;
            while ((text = ftrace.ReadLine()) is not null)
            {
                n++;
                stats.Lines = n;
                switch (FtraceLine.Read(n, text))
                {
                    case FtraceItem.Lost l: stats.LostEvents += l.Count; break;
                    case FtraceItem.CpuBufferStarted c when !sharedBuffer: stats.OverwrittenCpus.Add(c.Cpu); break;
                    case FtraceItem.Entries e when !sharedBuffer: stats.LostEvents += Math.Max(0, e.Written - e.InBuffer); break;
                    case FtraceItem.Event ev:
                    {
                        var line = ev.Line;
                        if (line.Event == MarkerEvent && sessionMarker is not null)
                        {
                            var t = line.Body.Trim();
                            if (t == BeginMarker) { inSession = true; stats.SessionStartSeen = true; continue; }
                            if (t == EndMarker) { inSession = false; continue; }
                        }
                        if (!inSession) { stats.OutsideSession++; continue; }
                        if (!Write(w, line, stats)) { stats.Foreign++; continue; }
                        w.Flush();
                        body.WriteByte((byte)'\n');
                        stats.Events++;
                        stats.First ??= line.Seconds;
                        stats.Last = line.Seconds;
                        break;
                    }
                }
            }
        }
        // The session's first line is its begin marker: without it the start of the trace was overwritten.
        if (sessionMarker is not null && !stats.SessionStartSeen) stats.SessionStartMissing = true;
        WriteHeader(output, header, stats);
        body.Position = 0;
        body.CopyTo(output);
        return stats;
    }

    /// <summary>Converts a whole text in memory (tests, small traces).</summary>
    public (string Json, ConversionStats Stats) ConvertText(string ftrace, CqTraceHeader header)
    {
        using var ms = new MemoryStream();
        var stats = Convert(new StringReader(ftrace), header, ms);
        return (System.Text.Encoding.UTF8.GetString(ms.ToArray()), stats);
    }

    private static void WriteHeader(Stream output, CqTraceHeader h, ConversionStats stats)
    {
        using (var w = new Utf8JsonWriter(output))
        {
            w.WriteStartObject();
            w.WriteString("type", "header");
            w.WriteString("format", Format);
            w.WriteString("policy", h.Policy);
            w.WriteNumber("threads", h.Threads);
            if (h.DriverThreads is { } dt) w.WriteNumber("driver_threads", dt);
            w.WriteStartArray("probes");
            foreach (var k in h.Probes) w.WriteStringValue(TraceReader.Name(k));
            w.WriteEndArray();
            if (h.Board is not null) w.WriteString("board", h.Board);
            w.WriteString("kernel", h.Kernel);
            w.WriteString("clock", "mono");
            w.WriteNumber("lost_events", stats.LostEvents);
            if (stats.SessionStartMissing) w.WriteBoolean("start_missing", true);
            if (stats.OverwrittenCpus.Count > 0)
            {
                w.WriteStartArray("overwritten_cpus");
                foreach (var c in stats.OverwrittenCpus) w.WriteNumberValue(c);
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        output.WriteByte((byte)'\n');
    }

    /// <summary>Writes one event object; false when the line is not one of this session's events.</summary>
    private bool Write(Utf8JsonWriter w, FtraceLine line, ConversionStats stats)
    {
        EventMapping? map;
        if (line.Event == MarkerEvent) map = new EventMapping(TraceKind.Mark);
        else if (!events.TryGetValue(line.Event, out map)) return false;

        w.Reset();
        w.WriteStartObject();
        w.WriteNumber("t", line.Seconds);
        w.WriteString("task", line.Task);
        w.WriteString("ev", TraceReader.Name(map.Kind));
        w.WriteNumber("cpu", line.Cpu);
        switch (map.Kind)
        {
            case TraceKind.Mark:
                w.WriteString("text", line.Body.Trim());
                break;
            case TraceKind.SmcBegin:
            {
                var args = line.HexList();
                if (args.Count == 0) throw new FtraceFormatException(line.Number, $"{line.Event}: no SMC function ID", line.Body);
                var id = (uint)args[0];
                w.WriteString("smc", (id & FastCallBit) != 0 ? "fast" : (id & FunctionMask) == ReturnFromRpc ? "rpc_return" : "call");
                w.WriteString("func", $"0x{id:x}");
                break;
            }
            case TraceKind.SmcEnd:
            {
                var rets = line.HexList();
                if (rets.Count == 0) throw new FtraceFormatException(line.Number, $"{line.Event}: no result registers", line.Body);
                var a0 = rets[0];
                w.WriteString("result", a0 == 0 ? "ok" : a0 == ThreadLimit ? "ethread_limit"
                    : a0 != UnknownFunction && (a0 & RpcPrefixMask) == RpcPrefix ? "rpc" : "error");
                w.WriteString("a0", $"0x{a0:x}");
                break;
            }
            default:
                WriteProbeFields(w, line, map);
                break;
        }
        w.WriteEndObject();
        stats.ByKind[map.Kind] = stats.Count(map.Kind) + 1;
        return true;
    }

    private static void WriteProbeFields(Utf8JsonWriter w, FtraceLine line, EventMapping map)
    {
        var f = line.Fields();
        string Need(string name) => f.TryGetValue(name, out var v) ? v
            : throw new FtraceFormatException(line.Number, $"{line.Event} ({TraceReader.Name(map.Kind)}): field '{name}' missing", line.Body);
        void Int(string name, string? jsonName = null)
        {
            if (f.TryGetValue(name, out var v)) w.WriteNumber(jsonName ?? name, Number(line, name, v));
        }

        switch (map.Kind)
        {
            case TraceKind.WaitInit:
                w.WriteString("w", Hex(line, "w", Need("w")));
                // Drivers before Linux 6.8 have no system callers: every call is a normal one.
                w.WriteNumber("sys", f.TryGetValue("sys", out var sys) ? (Number(line, "sys", sys) != 0 ? 1 : 0) : 0);
                Int("total"); Int("free"); Int("sysreq");
                break;
            case TraceKind.Admitted:
                Int("free"); Int("sysreq");
                break;
            case TraceKind.Block:
            case TraceKind.Woken:
                w.WriteString("w", Hex(line, "w", Need("w")));
                break;
            case TraceKind.Complete:
            {
                var c = Address(line, "c", Need("c"));
                w.WriteString("w", $"0x{c - (ulong)(map.WaiterFromCompletion ?? 0):x}");
                w.WriteString("c", $"0x{c:x}");
                break;
            }
            case TraceKind.Final:
                w.WriteString("w", Hex(line, "w", Need("w")));
                Int("free"); Int("sysreq");
                if (f.TryGetValue("done", out var done))
                {
                    // A completion's done counts complete() calls; the format's flag is "completed or not".
                    var d = Number(line, "done", done);
                    w.WriteNumber("done", d > 0 ? 1 : 0);
                    if (d > 1) w.WriteNumber("done_count", d);
                }
                break;
            case TraceKind.SysRegister:
                if (f.TryGetValue("session", out var s)) w.WriteString("session", Number(line, "session", s).ToString(CultureInfo.InvariantCulture));
                w.WriteNumber("ok", Number(line, "ret", Need("ret")) == 0 ? 1 : 0);
                break;
            case TraceKind.CloseBegin:
                w.WriteNumber("sys", Number(line, "sys", Need("sys")) != 0 ? 1 : 0);
                if (f.TryGetValue("session", out var cs)) w.WriteString("session", Number(line, "session", cs).ToString(CultureInfo.InvariantCulture));
                break;
        }
    }

    private static ulong Address(FtraceLine line, string field, string v)
    {
        var digits = v.StartsWith("0x", StringComparison.Ordinal) ? v[2..] : v;
        return ulong.TryParse(digits, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var a) && digits.Length > 0 ? a
            : throw new FtraceFormatException(line.Number, $"{line.Event}: {field}={v} is not an address", line.Body);
    }

    private static string Hex(FtraceLine line, string field, string v) => $"0x{Address(line, field, v):x}";

    /// <summary>A value as the kernel prints it: decimal (signed or not) or 0x-prefixed hex.</summary>
    private static long Number(FtraceLine line, string field, string v)
    {
        if (v.StartsWith("0x", StringComparison.Ordinal) && ulong.TryParse(v.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var h))
            return unchecked((long)h);
        if (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var d)) return d;
        throw new FtraceFormatException(line.Number, $"{line.Event}: {field}={v} is not a number", line.Body);
    }
}
