using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Hil.Model.Conformance;

/// <summary>A trace line is wrong: names the file, line and field.</summary>
public sealed class TraceFormatException(string source, long line, string field, string problem)
    : Exception($"{source}:{line}: {field}: {problem}")
{
    public string File { get; } = source;
    public long Line { get; } = line;
    public string Field { get; } = field;
}

/// <summary>
/// Streams a JSON-lines trace: one line at a time from a byte buffer, no per-line string, so
/// memory stays flat whatever the trace length. Task names are interned to small integers.
/// </summary>
public sealed class TraceReader : IDisposable
{
    private readonly Stream _stream;
    private readonly string _source;
    private readonly Dictionary<string, int> _tasks = [];
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _taskLookup;
    private readonly List<string> _taskNames = [];
    private byte[] _buf = ArrayPool<byte>.Shared.Rent(1 << 16);
    private int _start, _end;
    private bool _eof;
    private long _line;

    public TraceReader(Stream stream, string source)
    {
        _stream = stream;
        _source = source;
        _taskLookup = _tasks.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Longest line accepted (bytes): a trace line is a few hundred bytes.</summary>
    public const int MaxLineBytes = 1 << 20;

    /// <summary>Longest task name accepted: Linux's comm is 16 bytes, plus "-pid".</summary>
    public const int MaxTaskName = 256;

    /// <summary>The format this reader understands (the header's "format").</summary>
    public const string Format = "hil-cq-trace/1";

    /// <summary>Upper bound for thread counts in the header: more than any OP-TEE build has, small enough to allocate.</summary>
    public const int MaxThreads = 4096;

    public TraceHeader? Header { get; private set; }

    /// <summary>Events returned so far (a trace with none is not a trace).</summary>
    public long Events { get; private set; }

    /// <summary>Events other than marks: what the model judges (marks alone show nothing).</summary>
    public long CallQueueEvents { get; private set; }

    private double _lastTime = double.NegativeInfinity;
    private long _lastTimeLine;
    public long LinesRead => _line;
    public string TaskName(int task) => task >= 0 && task < _taskNames.Count ? _taskNames[task] : "?";

    /// <summary>Reads the next event into <paramref name="e"/>; false at the end. A header line is consumed into <see cref="Header"/>.</summary>
    public bool Next(ref TraceEvent e)
    {
        while (NextLine(out var line))
        {
            _line++;
            var trimmed = line.Trim(" \t\r"u8);
            if (trimmed.IsEmpty || trimmed[0] == (byte)'#') continue;
            e.Reset();
            e.Line = _line;
            Parse(trimmed, ref e);
            if (e.Kind == TraceKind.Header) continue;
            Events++;
            if (e.Kind != TraceKind.Mark) CallQueueEvents++;
            return true;
        }
        return false;
    }

    private bool NextLine(out ReadOnlySpan<byte> line)
    {
        while (true)
        {
            var avail = _buf.AsSpan(_start, _end - _start);
            var nl = avail.IndexOf((byte)'\n');
            if (nl >= 0)
            {
                line = avail[..nl];
                _start += nl + 1;
                return true;
            }
            if (_eof)
            {
                if (avail.IsEmpty) { line = default; return false; }
                line = avail;
                _start = _end;
                return true;
            }
            // Compact, grow when one line fills the buffer, then read more.
            if (_start > 0)
            {
                avail.CopyTo(_buf);
                _end -= _start; _start = 0;
            }
            if (_end == _buf.Length)
            {
                // A real line is a few hundred bytes; /dev/zero or a file without newlines must not take the machine's memory.
                if (_buf.Length >= MaxLineBytes) throw new TraceFormatException(_source, _line + 1, "(line)", $"line longer than {MaxLineBytes / 1024} KiB (no newline): not a trace");
                var bigger = ArrayPool<byte>.Shared.Rent(_buf.Length * 2);
                _buf.AsSpan(0, _end).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(_buf);
                _buf = bigger;
            }
            var n = _stream.Read(_buf, _end, _buf.Length - _end);
            if (n == 0) _eof = true; else _end += n;
        }
    }

    private void Parse(ReadOnlySpan<byte> json, ref TraceEvent e)
    {
        var r = new Utf8JsonReader(json, new JsonReaderOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        string field = "(line)";
        bool sawKind = false, sawTime = false;
        bool isHeader = false;
        uint seen = 0;   // bit per known field: a field given twice is an error (which one would the tracer have meant?)
        string? hFormat = null, hPolicy = null, hBoard = null, hKernel = null;
        int? hThreads = null, hDriver = null, hSysReq = null;
        HashSet<TraceKind>? hProbes = null;
        try
        {
            if (!r.Read() || r.TokenType != JsonTokenType.StartObject) throw Bad("(line)", "expected a JSON object per line");
            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                // Property names compared as UTF-8 bytes: no string per field on the hot path.
                var index = FieldIndex(r.ValueSpan);
                if (index >= 0)
                {
                    field = KnownFields[index];
                    var bit = 1u << index;
                    if ((seen & bit) != 0) throw Bad(field, "given twice on one line");
                    seen |= bit;
                }
                else field = "";
                r.Read();
                switch (field)
                {
                    case "type":
                        isHeader = r.TokenType == JsonTokenType.String && r.ValueSpan.SequenceEqual("header"u8);
                        if (!isHeader) throw Bad(field, "only \"header\" is known (events have \"ev\")");
                        e.Kind = TraceKind.Header; sawKind = true;
                        break;
                    case "ev": e.Kind = KindOf(ref r); sawKind = true; break;
                    case "t": e.Time = Seconds(ref r, field, 1, ref sawTime); break;
                    case "t_ns": e.Time = Seconds(ref r, field, 1e-9, ref sawTime); break;
                    case "task": e.Task = Intern(ref r); break;
                    case "w": e.Waiter = Address(ref r); e.HasWaiter = true; break;
                    case "sys": e.Sys = (sbyte)(Flag(ref r, field) ? 1 : 0); break;
                    case "free": e.Free = Count(ref r, field); break;
                    case "sysreq": if (isHeader) hSysReq = Count(ref r, field); else e.SysReq = Count(ref r, field); break;
                    case "total": e.Total = Count(ref r, field); break;
                    case "done": e.Done = (sbyte)(Flag(ref r, field) ? 1 : 0); break;
                    case "ok": e.Ok = (sbyte)(Flag(ref r, field) ? 1 : 0); break;
                    case "smc": e.Smc = SmcOf(ref r); break;
                    case "result": e.Result = ResultOf(ref r); break;
                    case "session": e.Session = r.TokenType == JsonTokenType.String ? Bounded(ref r, field) : Num(ref r, field).ToString(CultureInfo.InvariantCulture); break;
                    case "text": e.Text = Str(ref r, field); break;
                    case "format": hFormat = Str(ref r, field); break;
                    case "policy": hPolicy = Bounded(ref r, field); break;
                    case "board": hBoard = Bounded(ref r, field); break;
                    case "kernel": hKernel = Bounded(ref r, field); break;
                    case "threads": hThreads = Threads(ref r, field); break;
                    case "driver_threads": hDriver = Threads(ref r, field); break;
                    case "probes":
                        if (r.TokenType != JsonTokenType.StartArray) throw Bad(field, "expected a list of probe names");
                        hProbes = [];
                        while (r.Read() && r.TokenType != JsonTokenType.EndArray) hProbes.Add(KindOf(ref r, field));
                        break;
                    default: r.Skip(); break;   // extra fields (cpu, raw values) are allowed
                }
            }
            if (r.TokenType != JsonTokenType.EndObject) throw Bad(field, "the JSON object is not closed");
            // Anything after the object (a second object, a stray bracket) means the line is not what the tracer wrote.
            if (r.BytesConsumed != json.Length) throw Bad("(line)", "text after the JSON object");
        }
        catch (JsonException ex)
        {
            throw Bad(field.Length > 0 ? field : "(line)", $"not valid JSON ({ex.Message.Split('.')[0]})");
        }
        catch (InvalidOperationException ex)
        {
            throw Bad(field, $"wrong value type ({ex.Message.Split('.')[0]})");
        }
        if (!sawKind) throw Bad("ev", "missing (each line needs \"ev\", or \"type\":\"header\" on the first line)");
        if (isHeader)
        {
            if (_line != 1) throw Bad("type", "a header is allowed only on the first line");
            if (hFormat is not null && hFormat != Format) throw Bad("format", $"'{Clip(hFormat)}' is not a format this checker reads (expected {Format})");
            if (hThreads == 0) throw Bad("threads", "must be at least 1 (OP-TEE always has a thread)");
            Header = new TraceHeader(hFormat, hPolicy, hThreads, hDriver, hSysReq, hProbes, hBoard, hKernel);
            return;
        }
        if (!sawTime) throw Bad("t", "required (seconds, or \"t_ns\")");
        // The tracer writes the trace buffer in global timestamp order: a line earlier than the one
        // before it is a merged, edited or corrupted trace, and lock order could not be trusted.
        if (e.Time < _lastTime)
            throw Bad("t", $"{e.Time.ToString("0.000000###", CultureInfo.InvariantCulture)} s is earlier than line {_lastTimeLine} ({_lastTime.ToString("0.000000###", CultureInfo.InvariantCulture)} s): timestamps must not decrease");
        _lastTime = e.Time;
        _lastTimeLine = _line;
        if (e.Kind is TraceKind.WaitInit or TraceKind.Block or TraceKind.Woken or TraceKind.Complete or TraceKind.Final && !e.HasWaiter)
            throw Bad("w", $"required for \"{Name(e.Kind)}\" (the waiter's address)");
        if (e.Kind is not TraceKind.Mark && e.Task < 0) throw Bad("task", "required");
        if (e.Kind == TraceKind.SmcEnd && e.Result == SmcResult.Unknown) throw Bad("result", "required for smc_end (ok, rpc, ethread_limit, busy, error)");
    }

    private double Seconds(ref Utf8JsonReader r, string field, double scale, ref bool sawTime)
    {
        if (sawTime) throw Bad(field, "a second timestamp on one line (give \"t\" or \"t_ns\")");
        sawTime = true;
        var v = Num(ref r, field) * scale;
        if (v < 0 || !double.IsFinite(v)) throw Bad(field, $"must be a time ≥ 0 (got {v.ToString(CultureInfo.InvariantCulture)})");
        return v;
    }

    /// <summary>A counter read on the board (free, sysreq, total): never negative.</summary>
    private int Count(ref Utf8JsonReader r, string field)
    {
        var v = Int(ref r, field);
        if (v < 0) throw Bad(field, $"must not be negative (got {v}): a counter of the driver");
        return v;
    }

    private int Threads(ref Utf8JsonReader r, string field)
    {
        var v = Count(ref r, field);
        if (v > MaxThreads) throw Bad(field, $"{v} is more than {MaxThreads} threads: not a real board");
        return v;
    }

    private string Bounded(ref Utf8JsonReader r, string field)
    {
        var s = Str(ref r, field);
        if (s.Length > MaxTaskName) throw Bad(field, $"longer than {MaxTaskName} characters");
        return s;
    }

    private static string Clip(string s) => s.Length <= 40 ? s : s[..40] + "…";

    private TraceFormatException Bad(string field, string problem) => new(_source, _line, field, problem);

    private static readonly string[] KnownFields =
        ["type", "ev", "t", "t_ns", "task", "w", "sys", "free", "sysreq", "total", "done", "ok", "smc", "result", "session", "text",
         "format", "policy", "board", "kernel", "threads", "driver_threads", "probes"];

    private static readonly byte[][] KnownFieldBytes = KnownFields.Select(Encoding.UTF8.GetBytes).ToArray();

    /// <summary>The index of a known field in <see cref="KnownFields"/>, or -1 for extra fields (skipped).</summary>
    private static int FieldIndex(ReadOnlySpan<byte> name)
    {
        // The hot fields first, decided on length and first byte.
        switch (name.Length)
        {
            case 1 when name[0] == (byte)'t': return 2;
            case 1 when name[0] == (byte)'w': return 5;
            case 2 when name[0] == (byte)'e' && name[1] == (byte)'v': return 1;
            case 4 when name.SequenceEqual("task"u8): return 4;
            case 3 when name.SequenceEqual("sys"u8): return 6;
            case 3 when name.SequenceEqual("smc"u8): return 12;
            case 6 when name.SequenceEqual("result"u8): return 13;
        }
        for (var i = 0; i < KnownFieldBytes.Length; i++)
            if (name.SequenceEqual(KnownFieldBytes[i])) return i;
        return -1;
    }

    private static string Str(ref Utf8JsonReader r, string field) =>
        r.TokenType == JsonTokenType.String ? r.GetString()! : throw new InvalidOperationException($"'{field}' must be a string");

    private double Num(ref Utf8JsonReader r, string field)
    {
        if (r.TokenType == JsonTokenType.Number) return r.GetDouble();
        throw Bad(field, "must be a number");
    }

    private int Int(ref Utf8JsonReader r, string field)
    {
        if (r.TokenType == JsonTokenType.Number && r.TryGetInt32(out var v)) return v;
        throw Bad(field, "must be a whole number");
    }

    private bool Flag(ref Utf8JsonReader r, string field) => r.TokenType switch
    {
        JsonTokenType.True => true,
        JsonTokenType.False => false,
        JsonTokenType.Number when r.TryGetInt32(out var v) && v is 0 or 1 => v == 1,
        _ => throw Bad(field, "must be 0, 1, true or false"),
    };

    private ulong Address(ref Utf8JsonReader r)
    {
        if (r.TokenType == JsonTokenType.Number && r.TryGetUInt64(out var n)) return n;
        if (r.TokenType != JsonTokenType.String) throw Bad("w", "must be a hex address string");
        var s = r.ValueSpan;
        if (s.StartsWith("0x"u8) || s.StartsWith("0X"u8)) s = s[2..];
        if (s.IsEmpty || !Utf8Parser.TryParse(s, out ulong v, out var used, 'x') || used != s.Length)
            throw Bad("w", $"'{Encoding.UTF8.GetString(r.ValueSpan)}' is not a hex address");
        return v;
    }

    // Consecutive lines mostly name the same few tasks: their UTF-8 names are remembered so that
    // most lines find their task id without decoding the string.
    private readonly byte[][] _recentTaskBytes = new byte[8][];
    private readonly int[] _recentTaskIds = new int[8];
    private int _recentTaskNext;

    private int Intern(ref Utf8JsonReader r)
    {
        if (r.TokenType is not (JsonTokenType.String or JsonTokenType.Number)) throw Bad("task", "must be a string such as \"xtest-190\"");
        var raw = r.ValueSpan;
        if (r.TokenType == JsonTokenType.String && !r.ValueIsEscaped)
            for (var i = 0; i < _recentTaskBytes.Length; i++)
                if (_recentTaskBytes[i] is { } b && raw.SequenceEqual(b)) return _recentTaskIds[i];
        // A comm is 16 bytes plus "-pid"; the bound also keeps the stack buffer below safe.
        if (raw.Length > MaxTaskName * 6 || (r.TokenType == JsonTokenType.String && r.ValueIsEscaped ? r.GetString()!.Length : Encoding.UTF8.GetCharCount(raw)) > MaxTaskName)
            throw Bad("task", $"longer than {MaxTaskName} characters");
        Span<char> chars = stackalloc char[MaxTaskName];
        var len = r.TokenType == JsonTokenType.String ? r.CopyString(chars) : Encoding.UTF8.GetChars(raw, chars);
        var key = chars[..len];
        if (!_taskLookup.TryGetValue(key, out var id))
        {
            var s = key.ToString();
            id = _taskNames.Count;
            _tasks[s] = id;
            _taskNames.Add(s);
        }
        if (r.TokenType == JsonTokenType.String && !r.ValueIsEscaped)
        {
            _recentTaskBytes[_recentTaskNext] = raw.ToArray();
            _recentTaskIds[_recentTaskNext] = id;
            _recentTaskNext = (_recentTaskNext + 1) % _recentTaskBytes.Length;
        }
        return id;
    }

    private TraceKind KindOf(ref Utf8JsonReader r, string field = "ev")
    {
        if (r.TokenType != JsonTokenType.String) throw Bad(field, "must be a string");
        var v = r.ValueSpan;
        if (v.SequenceEqual("wait_init"u8)) return TraceKind.WaitInit;
        if (v.SequenceEqual("admitted"u8)) return TraceKind.Admitted;
        if (v.SequenceEqual("block"u8)) return TraceKind.Block;
        if (v.SequenceEqual("woken"u8)) return TraceKind.Woken;
        if (v.SequenceEqual("complete"u8)) return TraceKind.Complete;
        if (v.SequenceEqual("final"u8)) return TraceKind.Final;
        if (v.SequenceEqual("smc_begin"u8)) return TraceKind.SmcBegin;
        if (v.SequenceEqual("smc_end"u8)) return TraceKind.SmcEnd;
        if (v.SequenceEqual("sys_register"u8)) return TraceKind.SysRegister;
        if (v.SequenceEqual("close_begin"u8)) return TraceKind.CloseBegin;
        if (v.SequenceEqual("mark"u8)) return TraceKind.Mark;
        throw Bad(field, $"unknown event '{Clip(Encoding.UTF8.GetString(v))}'; expected one of {string.Join(", ", Names)}");
    }

    public static readonly string[] Names =
        ["wait_init", "admitted", "block", "woken", "complete", "final", "smc_begin", "smc_end", "sys_register", "close_begin", "mark"];

    public static string Name(TraceKind k) => k == TraceKind.Header ? "header" : Names[(int)k];

    private SmcCall SmcOf(ref Utf8JsonReader r)
    {
        if (r.TokenType != JsonTokenType.String) throw Bad("smc", "must be a string");
        var v = r.ValueSpan;
        if (v.SequenceEqual("call"u8)) return SmcCall.Call;
        if (v.SequenceEqual("rpc_return"u8)) return SmcCall.RpcReturn;
        if (v.SequenceEqual("fast"u8)) return SmcCall.Fast;
        throw Bad("smc", $"'{Encoding.UTF8.GetString(v)}' is not call, rpc_return or fast");
    }

    private SmcResult ResultOf(ref Utf8JsonReader r)
    {
        if (r.TokenType != JsonTokenType.String) throw Bad("result", "must be a string");
        var v = r.ValueSpan;
        if (v.SequenceEqual("ok"u8)) return SmcResult.Ok;
        if (v.SequenceEqual("rpc"u8)) return SmcResult.Rpc;
        if (v.SequenceEqual("ethread_limit"u8) || v.SequenceEqual("busy"u8)) return SmcResult.ThreadLimit;
        if (v.SequenceEqual("error"u8)) return SmcResult.Error;
        throw Bad("result", $"'{Encoding.UTF8.GetString(v)}' is not ok, rpc, ethread_limit, busy or error");
    }

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_buf);
        _stream.Dispose();
    }
}
