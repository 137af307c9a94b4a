using System.Globalization;
using Hil.Boards.Failures;
using Hil.Boards.Shell;
using Hil.Boards.Ssh;
using Serilog;

namespace Hil.Workloads.Kmod;

/// <summary>The module turned a command down: the reason is the one it left in its error file.</summary>
public sealed class KmodCommandRejectedException(string command, string errno, string reason)
    : HilException(ClassOf(errno), $"hil_cq rejected '{command}': {reason} [{errno}]")
{
    public string Command { get; } = command;
    /// <summary>EINVAL, ENOENT, EEXIST, EBUSY, ENOSPC (our misuse) or EIO, ENODEV (the board's TEE failed us).</summary>
    public string Errno { get; } = errno;
    public string Reason { get; } = reason;

    private static FailureClass ClassOf(string errno) => errno is "EIO" or "ENODEV" ? FailureClass.Product : FailureClass.Test;
}

/// <summary>How the module answered one ctl line.</summary>
public sealed record KmodReply(string Command, bool Accepted, string? Errno, string? Reason)
{
    public override string ToString() => Accepted ? $"'{Command}' accepted" : $"'{Command}' rejected: {Errno}: {Reason}";
}

/// <summary>What unloading took: on the board's clock, and how many calls were still in flight.</summary>
public sealed record KmodUnload(TimeSpan Duration, int InFlight);

/// <summary>
/// hil_cq loaded on a board, driven over SSH: every ctl write is one quoted printf; a rejected one
/// stops its batch and surfaces the module's reason as <see cref="KmodCommandRejectedException"/>.
/// </summary>
public sealed class KmodDriver
{
    public const string DebugfsDirectory = "/sys/kernel/debug/hil_cq";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);
    private readonly SshLink _ssh;
    private readonly ILogger _log;

    private KmodDriver(SshLink ssh, BuiltModule module, string remotePath, ILogger log)
    {
        _ssh = ssh;
        Module = module;
        RemotePath = remotePath;
        _log = log.ForContext<KmodDriver>();
    }

    public BuiltModule Module { get; }
    /// <summary>Where the .ko sits on the board.</summary>
    public string RemotePath { get; }
    public bool IsLoaded { get; private set; }
    /// <summary>The info file as read right after loading.</summary>
    public KmodInfo? LoadInfo { get; private set; }

    /// <summary>Copies the module to the board (replacing a stale loaded copy) and loads it.</summary>
    public static async Task<KmodDriver> LoadAsync(SshLink ssh, BuiltModule module, ILogger log, CancellationToken ct = default)
    {
        var release = (await ssh.RunCheckedAsync("uname -r", CommandTimeout, ct).ConfigureAwait(false)).Stdout.Trim();
        if (release != module.KernelRelease)
            throw new TestErrorException($"{module.Path} is built for kernel {module.KernelRelease}, but the board runs {release}");
        var remote = $"/tmp/hil/{KmodBuilder.ModuleName}-{module.Key}.ko";
        await BoardUpload.UploadAsync(ssh, module.Path, remote, "644", log, ct).ConfigureAwait(false);
        var driver = new KmodDriver(ssh, module, remote, log);
        await driver.InsertAsync(ct).ConfigureAwait(false);
        return driver;
    }

    /// <summary>insmod (after removing a copy left loaded by an earlier session), then checks what the module reports.</summary>
    public async Task InsertAsync(CancellationToken ct = default)
    {
        var script =
            "grep -q ' /sys/kernel/debug debugfs ' /proc/mounts || mount -t debugfs debugfs /sys/kernel/debug || exit 7; " +
            $"if [ -e /sys/module/{KmodBuilder.ModuleName} ]; then rmmod {KmodBuilder.ModuleName} || exit 6; fi; " +
            $"insmod {ShellQuote.Quote(RemotePath)} || {{ rc=$?; dmesg | tail -n 20 >&2; exit $rc; }}";
        var r = await _ssh.RunAsync(script, CommandTimeout, ct).ConfigureAwait(false);
        if (r.ExitStatus != 0)
        {
            var what = r.ExitStatus switch
            {
                6 => "a module of the same name is loaded and would not unload",
                7 => "debugfs is not mounted at /sys/kernel/debug and could not be mounted",
                _ => "insmod failed",
            };
            throw new ProductFailureException($"loading {KmodBuilder.ModuleName} on {_ssh.Address}: {what}",
                r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        IsLoaded = true;
        var info = await ReadInfoAsync(ct).ConfigureAwait(false);
        if (info.Kernel != Module.KernelRelease || info.SystemSessionsSupported != Module.SystemSessionsCompiled)
            throw new ProductFailureException($"{KmodBuilder.ModuleName} reports kernel {info.Kernel}, system sessions " +
                $"{(info.SystemSessionsSupported ? "supported" : "unsupported")}; built for {Module.KernelRelease} with them " +
                $"{(Module.SystemSessionsCompiled ? "supported" : "unsupported")}");
        LoadInfo = info;
        _log.Information("kmod: {Module} loaded on {Kernel} (system sessions {Sys})", KmodBuilder.ModuleName, info.Kernel,
            info.SystemSessionsSupported ? "supported" : "unsupported");
    }

    /// <summary>
    /// The shell script that writes each line to ctl, one write() each, and prints one reply line per
    /// command ("hil-accepted", or "hil-rejected" TAB the module's error file); it stops at the first
    /// rejection unless <paramref name="keepGoing"/>.
    /// </summary>
    public static string SendScript(IEnumerable<string> lines, bool keepGoing = false, string? before = null) =>
        $"d={DebugfsDirectory}; [ -e \"$d/ctl\" ] || {{ echo hil-not-loaded; exit 4; }}; rc=0; " + (before is null ? "" : $"{before}; ") +
        $"for c in {string.Join(' ', lines.Select(ShellQuote.Quote))}; do " +
        "if printf '%s\\n' \"$c\" > \"$d/ctl\" 2>/dev/null; then echo hil-accepted; " +
        $"else e=$(cat \"$d/error\"); printf 'hil-rejected\\t%s\\n' \"$e\"; rc=3; {(keepGoing ? "" : "break; ")}fi; " +
        "done; exit $rc";

    /// <summary>Sends commands in order; throws <see cref="KmodCommandRejectedException"/> on the first one the module rejects.</summary>
    public async Task SendAsync(IReadOnlyList<KmodCommand> commands, CancellationToken ct = default) => await SendAsync(commands, null, ct).ConfigureAwait(false);

    /// <summary>The same, after the board's shell ran <paramref name="before"/> (e.g. a wait for a moment to start at), in the same SSH command.</summary>
    public async Task SendAsync(IReadOnlyList<KmodCommand> commands, string? before, CancellationToken ct = default)
    {
        var replies = await SendLinesAsync(commands.Select(c => c.Line).ToList(), keepGoing: false, ct, before).ConfigureAwait(false);
        if (replies.FirstOrDefault(r => !r.Accepted) is { } bad)
            throw new KmodCommandRejectedException(bad.Command, bad.Errno!, bad.Reason!);
    }

    public Task SendAsync(params KmodCommand[] commands) => SendAsync(commands, CancellationToken.None);

    /// <summary>Writes one line as it is (no validation here): for checking the module's own validation.</summary>
    public async Task<KmodReply> TrySendRawAsync(string line, CancellationToken ct = default) =>
        (await SendLinesAsync([line], keepGoing: false, ct).ConfigureAwait(false))[0];

    /// <summary>Writes every line as it is, going on after rejections; one reply per line.</summary>
    public Task<IReadOnlyList<KmodReply>> TrySendRawAsync(IReadOnlyList<string> lines, CancellationToken ct = default) =>
        SendLinesAsync(lines, keepGoing: true, ct);

    private async Task<IReadOnlyList<KmodReply>> SendLinesAsync(IReadOnlyList<string> lines, bool keepGoing, CancellationToken ct, string? before = null)
    {
        var r = await _ssh.RunAsync(SendScript(lines, keepGoing, before), CommandTimeout, ct).ConfigureAwait(false);
        if (r.ExitStatus == 4)
        {
            IsLoaded = false;
            throw new TestErrorException($"{KmodBuilder.ModuleName} is not loaded on {_ssh.Address} (no {DebugfsDirectory}/ctl)");
        }
        var output = r.Stdout.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith("hil-", StringComparison.Ordinal)).ToList();
        if (r.ExitStatus is not (0 or 3) || output.Count == 0 || output.Count > lines.Count || (r.ExitStatus == 0 && output.Count != lines.Count))
            throw new InfrastructureException($"writing to {DebugfsDirectory}/ctl on {_ssh.Address} failed (exit {r.ExitStatus?.ToString(CultureInfo.InvariantCulture) ?? r.ExitSignal}): {r.Stderr.Trim()}");
        var replies = new List<KmodReply>();
        for (var i = 0; i < output.Count; i++)
        {
            if (output[i] == "hil-accepted")
            {
                replies.Add(new KmodReply(lines[i], true, null, null));
                continue;
            }
            var error = output[i].StartsWith("hil-rejected\t", StringComparison.Ordinal) ? output[i]["hil-rejected\t".Length..] : "";
            var colon = error.IndexOf(':');
            var (errno, reason) = colon > 0 ? (error[..colon], error[(colon + 1)..].Trim()) : ("ERROR", error.Length > 0 ? error : "no reason recorded");
            _log.Information("kmod: rejected '{Command}': {Errno}: {Reason}", lines[i], errno, reason);
            replies.Add(new KmodReply(lines[i], false, errno, reason));
        }
        return replies;
    }

    private async Task<string> ReadAsync(string file, CancellationToken ct) =>
        (await _ssh.RunCheckedAsync(ShellQuote.Join("cat", $"{DebugfsDirectory}/{file}"), CommandTimeout, ct).ConfigureAwait(false)).Stdout;

    public async Task<KmodInfo> ReadInfoAsync(CancellationToken ct = default) => KmodOutput.Info(await ReadAsync("info", ct).ConfigureAwait(false));
    public async Task<IReadOnlyList<KmodRecord>> ReadResultsAsync(CancellationToken ct = default) => KmodOutput.Records(await ReadAsync("results", ct).ConfigureAwait(false));
    public async Task<IReadOnlyList<KmodSessionInfo>> ReadSessionsAsync(CancellationToken ct = default) => KmodOutput.Sessions(await ReadAsync("sessions", ct).ConfigureAwait(false));
    /// <summary>OP-TEE's own answer to OPTEE_SMC_GET_THREAD_COUNT, asked by the module (not by the OP-TEE driver).</summary>
    public async Task<KmodFirmware> ReadFirmwareAsync(CancellationToken ct = default) => KmodOutput.Firmware(await ReadAsync("firmware", ct).ConfigureAwait(false));
    public async Task<string> ReadErrorAsync(CancellationToken ct = default) => (await ReadAsync("error", ct).ConfigureAwait(false)).Trim();

    /// <summary>Opens a session and returns what became of it (a system request may come back Unsupported or Rejected).</summary>
    public async Task<KmodSessionInfo> OpenAsync(string name, SessionKind kind, CancellationToken ct = default)
    {
        await SendAsync([KmodCommand.Open(name, kind)], ct).ConfigureAwait(false);
        return (await ReadSessionsAsync(ct).ConfigureAwait(false)).Single(s => s.Name == name);
    }

    public Task ResetAsync(CancellationToken ct = default) => SendAsync([KmodCommand.Reset], ct);

    /// <summary>
    /// Arms timing injection: the module's own call threads busy-wait <paramref name="microseconds"/> at
    /// <paramref name="symbol"/>+<paramref name="offset"/> (a kprobe; every other task passes untouched).
    /// Disarm with <see cref="StallOffAsync"/> (reset and unloading the module disarm it too).
    /// </summary>
    public async Task StallAsync(string symbol, int offset, uint microseconds, CancellationToken ct = default)
    {
        var cmd = KmodCommand.Stall(symbol, offset, microseconds);
        await SendAsync([cmd], ct).ConfigureAwait(false);
        _log.Information("kmod: stall armed at {Site}, {Us} us in the module's call threads", ((KmodCommand.StallAt)cmd).Site, microseconds);
    }

    public Task StallOffAsync(CancellationToken ct = default) => SendAsync([KmodCommand.StallOff], ct);

    /// <summary>How often the armed (or last) stall was hit, from the info file (0 when the module predates stalls).</summary>
    public async Task<int> StallHitsAsync(CancellationToken ct = default) =>
        (await ReadInfoAsync(ct).ConfigureAwait(false)).Fields.TryGetValue("stall_hits", out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : 0;

    /// <summary>tee_client_system_session() once more on open session <paramref name="name"/>; its record (Rc: the driver's answer).</summary>
    public Task<KmodRecord> RegisterAsync(string name, CancellationToken ct = default) => RegisterAsync(KmodCommand.Register(name), ct);

    /// <summary>tee_client_system_session() on raw TEE session id <paramref name="teeSession"/> (need not be open); its record.</summary>
    public Task<KmodRecord> RegisterIdAsync(uint teeSession, CancellationToken ct = default) => RegisterAsync(KmodCommand.RegisterId(teeSession), ct);

    private async Task<KmodRecord> RegisterAsync(KmodCommand command, CancellationToken ct)
    {
        await SendAsync([command], ct).ConfigureAwait(false);
        return (await ReadResultsAsync(ct).ConfigureAwait(false)).Last(r => r.Op == KmodOp.Register);
    }

    /// <summary>Queues <paramref name="calls"/> and starts them (one SSH command); returns the run's time base without waiting.</summary>
    /// <param name="startAfter">A shell command the board runs between queueing and go (e.g. a wait for a moment to start at).</param>
    public async Task<ulong> StartAsync(IReadOnlyList<KmodCall> calls, uint? leadMs = null, CancellationToken ct = default, string? startAfter = null)
    {
        if (calls.Count == 0) throw new ArgumentException("a run needs at least one call", nameof(calls));
        await SendAsync([.. calls.Select(c => c.Command)], ct).ConfigureAwait(false);
        await SendAsync([KmodCommand.Go(leadMs)], startAfter, ct).ConfigureAwait(false);
        return (await ReadInfoAsync(ct).ConfigureAwait(false)).T0Ns;
    }

    /// <summary>Waits on the board until no call is waiting or running, polling the info file every 50 ms.</summary>
    public async Task<KmodInfo> WaitIdleAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        var polls = (int)Math.Ceiling(timeout.TotalMilliseconds / 50);
        var script = $"d={DebugfsDirectory}; n=0; while grep -q '^state: running' \"$d/info\"; do " +
                     $"n=$((n+1)); if [ $n -gt {polls} ]; then echo hil-timeout; exit 5; fi; sleep 0.05; done; cat \"$d/info\"";
        var r = await _ssh.RunAsync(script, timeout + TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
        if (r.ExitStatus == 5)
            throw new ProductFailureException($"{KmodBuilder.ModuleName}: calls still in flight after {timeout.TotalSeconds:0.#} s",
                [(await ReadAsync("results", ct).ConfigureAwait(false)).Trim()]);
        if (r.ExitStatus != 0) throw new InfrastructureException($"waiting for {KmodBuilder.ModuleName} on {_ssh.Address} failed: {r.Stderr.Trim()}");
        return KmodOutput.Info(r.Stdout);
    }

    /// <summary>
    /// Runs <paramref name="calls"/> to the end: queue, go, wait, and return their records. The
    /// default timeout allows three times the planned span under emulation, plus 30 s.
    /// </summary>
    public async Task<KmodRun> RunAsync(IReadOnlyList<KmodCall> calls, uint? leadMs = null, TimeSpan? timeout = null, CancellationToken ct = default, string? startAfter = null)
    {
        var t0 = await StartAsync(calls, leadMs, ct, startAfter).ConfigureAwait(false);
        var span = calls.Max(c => (double)c.StartMs + c.HoldMs) + (leadMs ?? 10);
        await WaitIdleAsync(timeout ?? TimeSpan.FromMilliseconds(span * 3 + 30_000), ct).ConfigureAwait(false);
        var records = await ReadResultsAsync(ct).ConfigureAwait(false);
        // A run's calls (and timed closes) are exactly those due at t0 + their start offset.
        var run = records.Where(r => r.Op is KmodOp.Invoke or KmodOp.Close && r.StartMs is { } s && r.DueNs == t0 + (ulong)s * 1_000_000UL).ToList();
        if (run.Count != calls.Count)
            throw new ProductFailureException($"{KmodBuilder.ModuleName}: {calls.Count} calls started but {run.Count} records belong to the run at t0={t0}",
                records.Select(r => r.ToString()).ToList());
        return new KmodRun(t0, run);
    }

    /// <summary>rmmod, timed on the board; fails unless the module is gone afterwards.</summary>
    public async Task<KmodUnload> UnloadAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        var inFlight = 0;
        if (IsLoaded)
        {
            var info = await ReadInfoAsync(ct).ConfigureAwait(false);
            inFlight = info.Waiting + info.Calling;
        }
        var m = KmodBuilder.ModuleName;
        var script = $"[ -e /sys/module/{m} ] || {{ echo hil-not-loaded; exit 0; }}; read a _ < /proc/uptime; rmmod {m}; rc=$?; " +
                     $"read b _ < /proc/uptime; echo \"hil-rmmod $rc $a $b\"; if [ -e /sys/module/{m} ]; then echo hil-still-loaded; exit 9; fi; exit $rc";
        var r = await _ssh.RunAsync(script, timeout, ct).ConfigureAwait(false);
        if (r.ExitStatus != 0)
        {
            var dmesg = await _ssh.RunAsync("dmesg | tail -n 20", CommandTimeout, ct).ConfigureAwait(false);
            throw new ProductFailureException($"rmmod {m} on {_ssh.Address} failed (exit {r.ExitStatus}): {r.Stdout.Trim()} {r.Stderr.Trim()}",
                dmesg.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        IsLoaded = false;
        var line = r.Stdout.Split('\n').FirstOrDefault(l => l.StartsWith("hil-rmmod ", StringComparison.Ordinal));
        if (line is null) return new KmodUnload(TimeSpan.Zero, 0);
        var w = line.Split(' ');
        var seconds = double.Parse(w[3], CultureInfo.InvariantCulture) - double.Parse(w[2], CultureInfo.InvariantCulture);
        _log.Information("kmod: {Module} unloaded in {Seconds:0.00} s with {InFlight} calls in flight", m, seconds, inFlight);
        return new KmodUnload(TimeSpan.FromSeconds(seconds), inFlight);
    }

    /// <summary>The end of the kernel log (for evidence: the module logs each session and rejection there).</summary>
    public async Task<IReadOnlyList<string>> KernelLogAsync(int lines = 40, CancellationToken ct = default) =>
        (await _ssh.RunCheckedAsync($"dmesg | tail -n {lines.ToString(CultureInfo.InvariantCulture)}", CommandTimeout, ct).ConfigureAwait(false))
            .Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
}
