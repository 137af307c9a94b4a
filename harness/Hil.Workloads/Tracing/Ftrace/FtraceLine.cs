using System.Globalization;
using System.Text.RegularExpressions;

namespace Hil.Workloads.Tracing.Ftrace;

/// <summary>An ftrace text line the tracer cannot read: names the line number and shows the line.</summary>
public sealed class FtraceFormatException(long line, string problem, string text)
    : TracingException($"ftrace line {line}: {problem}: '{(text.Length > 200 ? text[..200] + "…" : text)}'")
{
    public long Line { get; } = line;
}

/// <summary>
/// One event line of ftrace's text output:
/// <c>task-pid [cpu] flags timestamp: event: body</c>, where a kprobe's body is
/// <c>(func+off/size [module]) name=value ...</c> (a return probe's: <c>(caller+off/size [module] &lt;- func)</c>)
/// and a tracepoint's body is its own print format.
/// </summary>
public sealed partial record FtraceLine(long Number, string Task, int Cpu, string Timestamp, string Event, string Body)
{
    /// <summary>Seconds as printed (6 decimals for the mono clock), kept as text so no digit is lost.</summary>
    public decimal Seconds => decimal.Parse(Timestamp, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);

    /// <summary>The probe's "(func+off/size [mod])" part, or null for tracepoints.</summary>
    public string? ProbeLocation => Body.StartsWith('(') && Body.IndexOf(')') is > 0 and var end ? Body[1..end] : null;

    /// <summary>The name=value arguments of a kprobe line.</summary>
    public IReadOnlyDictionary<string, string> Fields()
    {
        var rest = Body;
        if (rest.StartsWith('('))
        {
            var end = rest.IndexOf(')');
            if (end < 0) throw new FtraceFormatException(Number, "probe location without ')'", Body);
            rest = rest[(end + 1)..];
        }
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in rest.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=');
            if (eq <= 0) throw new FtraceFormatException(Number, $"argument '{part}' is not name=value", Body);
            fields[part[..eq]] = part[(eq + 1)..];
        }
        return fields;
    }

    /// <summary>The values inside the first "( ... )" of a tracepoint line, as unsigned hex numbers.</summary>
    public IReadOnlyList<ulong> HexList()
    {
        var open = Body.IndexOf('(');
        var close = open < 0 ? -1 : Body.IndexOf(')', open);
        if (close < 0) throw new FtraceFormatException(Number, $"{Event}: no '(...)' value list", Body);
        var list = new List<ulong>();
        foreach (var v in Body[(open + 1)..close].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var digits = v.StartsWith("0x", StringComparison.Ordinal) ? v[2..] : v;
            if (!ulong.TryParse(digits, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var n))
                throw new FtraceFormatException(Number, $"{Event}: '{v}' is not a hex number", Body);
            list.Add(n);
        }
        return list;
    }

    // Optional pieces: a TGID column "(  190)" (options/record-tgid) and the irq/preempt flags (options/irq-info).
    [GeneratedRegex(@"^\s*(?<task>.+?-\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?<cpu>\d+)\]\s+(?:(?<flags>[^\s]{4,6})\s+)?(?<ts>\d+\.\d+):\s+(?<event>[^\s:]+):\s?(?<body>.*)$")]
    private static partial Regex EventLine();

    [GeneratedRegex(@"^\s*CPU:\s*(?<cpu>\d+)\s+\[LOST\s+(?<n>\d+)\s+EVENTS\]\s*$")]
    private static partial Regex LostLine();

    [GeneratedRegex(@"^#+\s*CPU\s+(?<cpu>\d+)\s+buffer started\s*#+\s*$")]
    private static partial Regex BufferStarted();

    [GeneratedRegex(@"entries-in-buffer/entries-written:\s*(?<in>\d+)/(?<written>\d+)")]
    private static partial Regex EntriesHeader();

    /// <summary>Classifies one line of the trace text.</summary>
    public static FtraceItem Read(long number, string text)
    {
        if (string.IsNullOrWhiteSpace(text)) return FtraceItem.Blank;
        if (text.StartsWith('#'))
        {
            if (EntriesHeader().Match(text) is { Success: true } h)
                return new FtraceItem.Entries(long.Parse(h.Groups["in"].Value, CultureInfo.InvariantCulture), long.Parse(h.Groups["written"].Value, CultureInfo.InvariantCulture));
            if (BufferStarted().Match(text) is { Success: true } b)
                return new FtraceItem.CpuBufferStarted(int.Parse(b.Groups["cpu"].Value, CultureInfo.InvariantCulture));
            return FtraceItem.Blank;
        }
        if (LostLine().Match(text) is { Success: true } l)
            return new FtraceItem.Lost(int.Parse(l.Groups["cpu"].Value, CultureInfo.InvariantCulture), long.Parse(l.Groups["n"].Value, CultureInfo.InvariantCulture));
        var m = EventLine().Match(text);
        if (!m.Success) throw new FtraceFormatException(number, "not an ftrace event line (task-pid [cpu] flags seconds: event: ...)", text);
        return new FtraceItem.Event(new FtraceLine(number, m.Groups["task"].Value.Trim(), int.Parse(m.Groups["cpu"].Value, CultureInfo.InvariantCulture),
            m.Groups["ts"].Value, m.Groups["event"].Value, m.Groups["body"].Value.TrimEnd()));
    }
}

/// <summary>What a line of trace text is.</summary>
public abstract record FtraceItem
{
    public static readonly FtraceItem Blank = new BlankLine();

    public sealed record BlankLine : FtraceItem;
    public sealed record Event(FtraceLine Line) : FtraceItem;
    /// <summary>trace_pipe's notice that a CPU's buffer dropped events.</summary>
    public sealed record Lost(int Cpu, long Count) : FtraceItem;
    /// <summary>The trace file's notice that a CPU's oldest events were overwritten before the read.</summary>
    public sealed record CpuBufferStarted(int Cpu) : FtraceItem;
    /// <summary>The trace file's header: events still in the buffer / events ever written to it.</summary>
    public sealed record Entries(long InBuffer, long Written) : FtraceItem;
}
