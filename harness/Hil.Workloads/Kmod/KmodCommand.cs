using System.Globalization;
using System.Text.RegularExpressions;

namespace Hil.Workloads.Kmod;

/// <summary>Whether a session's calls are ordinary calls or system calls (a system session, Linux 6.8+).</summary>
public enum SessionKind { Normal, System }

/// <summary>The module's limits (tools/kmod/hil_cq.c): checked here first so that a bad plan fails before touching a board.</summary>
public static partial class KmodLimits
{
    public const int MaxSessions = 16;
    public const int MaxRecords = 256;
    public const uint MaxStartMs = 600_000;
    /// <summary>Bounds how long unloading may wait for a call in flight (kernel clients cannot cancel).</summary>
    public const uint MaxHoldMs = 60_000;
    public const uint MaxLeadMs = 10_000;
    public const int MaxNameLength = 15;
    /// <summary>The longest stall the module accepts (a busy-wait in a kprobe handler).</summary>
    public const uint MaxStallUs = 20_000;

    [GeneratedRegex("^[A-Za-z0-9_-]{1,15}$")]
    public static partial Regex SessionName();

    /// <summary>A kernel symbol as the module's stall command takes it.</summary>
    [GeneratedRegex("^[A-Za-z0-9_.]{1,127}$")]
    public static partial Regex SymbolName();

    public static string CheckName(string name) =>
        SessionName().IsMatch(name) ? name
            : throw new ArgumentException($"session name '{name}' must be 1-{MaxNameLength} characters of A-Z a-z 0-9 _ -", nameof(name));
}

/// <summary>
/// One line for the module's ctl file. Each kind validates its arguments as the module does, so a
/// bad plan is a clear ArgumentException in the harness rather than an EINVAL from the board.
/// </summary>
public abstract record KmodCommand
{
    /// <summary>The exact line written to ctl (without the newline).</summary>
    public abstract string Line { get; }
    public override string ToString() => Line;

    public static KmodCommand Open(string name, SessionKind kind) => new OpenSession(name, kind);
    public static KmodCommand Close(string name) => new CloseSession(name);
    /// <summary>A timed close: the next run closes the session at t0 + <paramref name="startMs"/>, in a thread of its own.</summary>
    public static KmodCommand CloseAt(string name, uint startMs) => new CloseSession(name, startMs);
    /// <summary>tee_client_system_session() once more on an open session (the driver must count it once).</summary>
    public static KmodCommand Register(string name) => new RegisterSession(name);
    /// <summary>tee_client_system_session() on a raw TEE session id, e.g. one not open (the driver must refuse it and count nothing).</summary>
    public static KmodCommand RegisterId(uint teeSession) => new RegisterRawId(teeSession);
    public static KmodCommand Call(string session, uint startMs, uint holdMs) => new QueueCall(session, startMs, holdMs);
    public static KmodCommand Go(uint? leadMs = null) => new StartRun(leadMs);
    public static KmodCommand Cancel { get; } = new CancelWaiting();
    public static KmodCommand Reset { get; } = new ResetAll();
    /// <summary>
    /// Timing injection: a kprobe at <paramref name="symbol"/>+<paramref name="offset"/> that busy-waits
    /// <paramref name="microseconds"/> in the module's own call threads only (widens a race window; the driver is untouched).
    /// </summary>
    public static KmodCommand Stall(string symbol, int offset, uint microseconds) => new StallAt(symbol, offset, microseconds);
    public static KmodCommand StallOff { get; } = new StallDisarm();

    private static string Ms(uint v) => v.ToString(CultureInfo.InvariantCulture);

    public sealed record OpenSession : KmodCommand
    {
        public OpenSession(string name, SessionKind kind)
        {
            Name = KmodLimits.CheckName(name);
            Kind = Enum.IsDefined(kind) ? kind : throw new ArgumentOutOfRangeException(nameof(kind));
        }
        public string Name { get; }
        public SessionKind Kind { get; }
        public override string Line => $"open {Name} {(Kind == SessionKind.System ? "system" : "normal")}";
    }

    public sealed record CloseSession : KmodCommand
    {
        public CloseSession(string name, uint? startMs = null)
        {
            Name = KmodLimits.CheckName(name);
            StartMs = startMs is null || startMs <= KmodLimits.MaxStartMs ? startMs
                : throw new ArgumentOutOfRangeException(nameof(startMs), startMs, $"start offset above the module's limit of {KmodLimits.MaxStartMs} ms");
        }
        public string Name { get; }
        /// <summary>Null: close now; else the close runs at the next run's t0 + StartMs.</summary>
        public uint? StartMs { get; }
        public override string Line => StartMs is { } s ? $"close {Name} {Ms(s)}" : $"close {Name}";
    }

    public sealed record RegisterSession : KmodCommand
    {
        public RegisterSession(string name) => Name = KmodLimits.CheckName(name);
        public string Name { get; }
        public override string Line => $"register {Name}";
    }

    public sealed record RegisterRawId(uint TeeSession) : KmodCommand
    {
        public override string Line => $"register-id {Ms(TeeSession)}";
    }

    public sealed record QueueCall : KmodCommand
    {
        public QueueCall(string session, uint startMs, uint holdMs)
        {
            Session = KmodLimits.CheckName(session);
            StartMs = startMs <= KmodLimits.MaxStartMs ? startMs
                : throw new ArgumentOutOfRangeException(nameof(startMs), startMs, $"start offset above the module's limit of {KmodLimits.MaxStartMs} ms");
            HoldMs = holdMs <= KmodLimits.MaxHoldMs ? holdMs
                : throw new ArgumentOutOfRangeException(nameof(holdMs), holdMs, $"hold time above the module's limit of {KmodLimits.MaxHoldMs} ms");
        }
        public string Session { get; }
        public uint StartMs { get; }
        public uint HoldMs { get; }
        public override string Line => $"call {Session} {Ms(StartMs)} {Ms(HoldMs)}";
    }

    public sealed record StartRun : KmodCommand
    {
        public StartRun(uint? leadMs)
        {
            LeadMs = leadMs is null || leadMs <= KmodLimits.MaxLeadMs ? leadMs
                : throw new ArgumentOutOfRangeException(nameof(leadMs), leadMs, $"lead above the module's limit of {KmodLimits.MaxLeadMs} ms");
        }
        public uint? LeadMs { get; }
        public override string Line => LeadMs is { } l ? $"go {Ms(l)}" : "go";
    }

    public sealed record CancelWaiting : KmodCommand
    {
        public override string Line => "cancel";
    }

    public sealed record ResetAll : KmodCommand
    {
        public override string Line => "reset";
    }

    public sealed record StallAt : KmodCommand
    {
        public StallAt(string symbol, int offset, uint microseconds)
        {
            Symbol = KmodLimits.SymbolName().IsMatch(symbol) ? symbol
                : throw new ArgumentException($"'{symbol}' is not a kernel symbol name (1-127 of A-Z a-z 0-9 _ .)", nameof(symbol));
            Offset = offset is >= 0 and <= 0x10000 ? offset : throw new ArgumentOutOfRangeException(nameof(offset), offset, "offset must be 0..0x10000");
            Microseconds = microseconds is >= 1 and <= KmodLimits.MaxStallUs ? microseconds
                : throw new ArgumentOutOfRangeException(nameof(microseconds), microseconds, $"a stall is 1..{KmodLimits.MaxStallUs} us");
        }
        public string Symbol { get; }
        public int Offset { get; }
        public uint Microseconds { get; }
        public string Site => $"{Symbol}+0x{Offset.ToString("x", CultureInfo.InvariantCulture)}";
        public override string Line => $"stall {Site} {Ms(Microseconds)}";
    }

    public sealed record StallDisarm : KmodCommand
    {
        public override string Line => "stall off";
    }
}

/// <summary>
/// One timed step of a run, StartMs after the run's time base: TEE_Wait(HoldMs) on a session, or
/// (<see cref="IsClose"/>) the close of the session.
/// </summary>
public sealed record KmodCall(string Session, uint StartMs, uint HoldMs, bool IsClose = false)
{
    /// <summary>The close of <paramref name="session"/> at t0 + <paramref name="startMs"/> (a system call when it is a system session).</summary>
    public static KmodCall Close(string session, uint startMs) => new(session, startMs, 0, IsClose: true);

    public KmodCommand Command => IsClose ? KmodCommand.CloseAt(Session, StartMs) : KmodCommand.Call(Session, StartMs, HoldMs);
}
