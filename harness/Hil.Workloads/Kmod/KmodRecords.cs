using System.Globalization;

namespace Hil.Workloads.Kmod;

public enum KmodOp { Open, Invoke, Close, Register }

public enum KmodCallState { Queued, Waiting, Calling, Done, Cancelled }

/// <summary>What asking for a system session gave.</summary>
public enum SystemRegistration
{
    /// <summary>Opened as a normal session.</summary>
    NotRequested,
    /// <summary>tee_client_system_session() accepted it: its calls are system calls.</summary>
    Registered,
    /// <summary>The kernel has no system sessions (before 6.8): the session stays normal. A result, not an error.</summary>
    Unsupported,
    /// <summary>The kernel has the API but refused (e.g. too few secure threads): the session stays normal.</summary>
    Rejected,
}

/// <summary>
/// One OP-TEE request the module made (a results line). Times are CLOCK_MONOTONIC ns on the board,
/// the clock of ftrace's "mono" trace clock. Rc is the kernel API's return; TeeResult/Origin are OP-TEE's.
/// </summary>
public sealed record KmodRecord(
    int Id, KmodOp Op, string Session, SessionKind Kind, uint? StartMs, uint? HoldMs, KmodCallState State,
    int? Tid, ulong? DueNs, ulong? RequestNs, ulong? ReturnNs, int? Rc, uint? TeeResult, uint? Origin)
{
    /// <summary>Returned from OP-TEE with success at both levels.</summary>
    public bool Succeeded => State == KmodCallState.Done && Rc == 0 && TeeResult == 0;

    public TimeSpan? Duration => RequestNs is { } a && ReturnNs is { } b ? TimeSpan.FromTicks((long)(b - a) / 100) : null;

    /// <summary>How far after the run's time base the call entered the driver, in ms.</summary>
    public double? RequestOffsetMs(ulong t0Ns) => RequestNs is { } r ? ((long)r - (long)t0Ns) / 1e6 : null;
    public double? ReturnOffsetMs(ulong t0Ns) => ReturnNs is { } r ? ((long)r - (long)t0Ns) / 1e6 : null;

    public override string ToString() =>
        $"#{Id} {Op.ToString().ToLowerInvariant()} {Session} ({Kind.ToString().ToLowerInvariant()}) {State.ToString().ToLowerInvariant()}" +
        (RequestNs is not null ? $" req={RequestNs} ret={ReturnNs?.ToString(CultureInfo.InvariantCulture) ?? "-"} rc={Rc} tee=0x{TeeResult:x8}" : "");
}

/// <summary>An open session as the module's sessions file lists it.</summary>
public sealed record KmodSessionInfo(string Name, uint TeeSession, SessionKind Kind, SystemRegistration System, int SystemRc, int Pending);

/// <summary>The module's info file.</summary>
public sealed record KmodInfo(
    string Kernel, bool SystemSessionsSupported, bool Running, int Sessions, int Records,
    int Queued, int Waiting, int Calling, int Done, int Cancelled, ulong T0Ns, int Runs, ulong NowNs,
    IReadOnlyDictionary<string, string> Fields);

/// <summary>
/// What OP-TEE itself answered the module's fast call OPTEE_SMC_GET_THREAD_COUNT (the firmware
/// file): its secure thread count, or why there is none (then <see cref="Reason"/> says why).
/// </summary>
public sealed record KmodFirmware(int? ThreadCount, string? Conduit, string? Reason)
{
    public override string ToString() => ThreadCount is { } n
        ? $"{n} secure threads (OPTEE_SMC_GET_THREAD_COUNT over {Conduit ?? "?"})"
        : $"thread count unavailable: {Reason ?? "no reason given"}";
}

/// <summary>A run started with go: its time base and its calls' records.</summary>
public sealed record KmodRun(ulong T0Ns, IReadOnlyList<KmodRecord> Calls)
{
    public bool AllSucceeded => Calls.Count > 0 && Calls.All(c => c.Succeeded);
}

/// <summary>Parses the module's debugfs files; a malformed line is a FormatException naming it.</summary>
public static class KmodOutput
{
    public static IReadOnlyList<KmodRecord> Records(string text) =>
        Lines(text).Select(ParseRecord).ToList();

    public static KmodRecord ParseRecord(string line)
    {
        var kv = KeyValueLine.Parse(line);
        return new KmodRecord(
            kv.Number<int>("id"),
            Enum<KmodOp>(kv, "op"),
            kv.Get("session"),
            Enum<SessionKind>(kv, "kind"),
            kv.OptionalNumber<uint>("start_ms"),
            kv.OptionalNumber<uint>("hold_ms"),
            Enum<KmodCallState>(kv, "state"),
            kv.OptionalNumber<int>("tid"),
            kv.OptionalNumber<ulong>("due_ns"),
            kv.OptionalNumber<ulong>("req_ns"),
            kv.OptionalNumber<ulong>("ret_ns"),
            kv.OptionalNumber<int>("rc"),
            kv.OptionalHex("ret"),
            kv.OptionalNumber<uint>("origin"));
    }

    public static IReadOnlyList<KmodSessionInfo> Sessions(string text) =>
        Lines(text).Select(line =>
        {
            var kv = KeyValueLine.Parse(line);
            var sys = kv.Get("system") switch
            {
                "no" => SystemRegistration.NotRequested,
                "registered" => SystemRegistration.Registered,
                "unsupported" => SystemRegistration.Unsupported,
                "rejected" => SystemRegistration.Rejected,
                var other => throw new FormatException($"unknown system='{other}' in: {line}"),
            };
            return new KmodSessionInfo(kv.Get("name"), kv.Number<uint>("tee_session"), Enum<SessionKind>(kv, "kind"), sys,
                kv.Number<int>("sys_rc"), kv.Number<int>("pending"));
        }).ToList();

    public static KmodInfo Info(string text)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in Lines(text))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0) throw new FormatException($"info line without 'key:': {line}");
            fields[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        string F(string k) => fields.TryGetValue(k, out var v) ? v : throw new FormatException($"info has no '{k}:' line");
        int I(string k) => int.Parse(F(k), CultureInfo.InvariantCulture);
        ulong U(string k) => ulong.Parse(F(k), CultureInfo.InvariantCulture);
        return new KmodInfo(F("kernel"), F("system_sessions") == "supported", F("state") == "running", I("sessions"), I("records"),
            I("queued"), I("waiting"), I("calling"), I("done"), I("cancelled"), U("t0_ns"), I("runs"), U("now_ns"), fields);
    }

    /// <summary>
    /// The firmware file: "thread_count: N" and "conduit: smc|hvc", or "thread_count: unavailable"
    /// with "reason: ...". Anything else is a FormatException quoting the file.
    /// </summary>
    public static KmodFirmware Firmware(string text)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in Lines(text))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0) throw new FormatException($"firmware line without 'key:': {line}");
            fields[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        var quoted = text.Trim().ReplaceLineEndings(" | ");
        if (!fields.TryGetValue("thread_count", out var count))
            throw new FormatException($"firmware file has no 'thread_count:' line: '{quoted}'");
        fields.TryGetValue("conduit", out var conduit);
        fields.TryGetValue("reason", out var reason);
        if (count == "unavailable")
            return new KmodFirmware(null, conduit, reason ?? throw new FormatException($"firmware file says the thread count is unavailable but gives no 'reason:': '{quoted}'"));
        // OP-TEE answers an unsigned register; a count a driver could use is a small positive number.
        if (!int.TryParse(count, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1)
            throw new FormatException($"firmware file: thread_count '{count}' is neither a positive number nor 'unavailable': '{quoted}'");
        if (conduit is not ("smc" or "hvc"))
            throw new FormatException($"firmware file: conduit '{conduit ?? "(missing)"}' is not smc or hvc: '{quoted}'");
        return new KmodFirmware(n, conduit, null);
    }

    private static IEnumerable<string> Lines(string text) =>
        text.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Trim().Length > 0);

    private static T Enum<T>(KeyValueLine kv, string key) where T : struct, Enum =>
        System.Enum.TryParse<T>(kv.Get(key), ignoreCase: true, out var v) && System.Enum.IsDefined(v) && !char.IsDigit(kv.Get(key)[0])
            ? v : throw new FormatException($"unknown {key}='{kv.Get(key)}' in: {kv.Text}");
}
