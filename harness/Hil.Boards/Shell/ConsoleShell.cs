using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Boards.Links;
using Serilog;

namespace Hil.Boards.Shell;

/// <summary>
/// A POSIX shell (sh, dash, bash, busybox ash) on a console, made predictable and framed so that
/// nothing else on the line can fake a result.
/// <para>
/// After login the shell gets: no echo, no output CR translation, no line editing or history, a
/// unique prompt, and a few functions. A command is sent as <c>hil_c SEQ BYTES CHARS 'command'</c>:
/// the board runs it only if the quoted text arrived with its length intact (else it says so and the
/// harness resends it), sends the output to a scratch file and answers with a frame: a header
/// (sequence, exit code and length, each twice), the output, a second copy of it (small outputs) or
/// its POSIX cksum (large outputs), and an end marker. Every marker starts with byte 0x1E and a
/// random per-session token that is only ever assembled by the board, so the echo of a command can
/// never match one.
/// </para>
/// <para>
/// Kernel log lines may land anywhere, even inside a marker: markers are searched with them removed,
/// and a frame is accepted only if its copies (or CRC) and length agree once the kernel lines are
/// taken out (or, if the command printed kernel-like lines itself, kept). A frame that fails is
/// requested again from the board (the output is still in the scratch file); a command line that did
/// not arrive is detected by a probe and resent (it never ran). On timeout the command is
/// interrupted with Ctrl-C and the shell resynchronised with a fresh marker; a shell that cannot be
/// resynchronised marks the session broken (infrastructure).
/// </para>
/// </summary>
public sealed class ConsoleShell
{
    private const int MaxLineBytes = 4000; // canonical tty lines hold 4095 bytes

    private readonly ConsoleLink _link;
    private readonly LoginSpec _login;
    private readonly ShellSpec _shell;
    private readonly ILogger _log;
    private string? _password;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private string _token = "";
    private Regex _marker = new("(?!)");
    private long _scanFrom;
    private int _generation;
    private int _seq;
    private int _sync;

    public ConsoleShell(ConsoleLink link, LoginSpec login, ShellSpec shell, ILogger logger, ShellOptions? options = null)
    {
        _link = link;
        _login = login;
        _shell = shell;
        _log = logger.ForContext<ConsoleShell>();
        Options = options ?? new ShellOptions();
    }

    public ShellOptions Options { get; }
    public ShellStats Stats { get; } = new();

    /// <summary>Logged in and set up; commands can run.</summary>
    public bool IsReady { get; private set; }

    /// <summary>True after the link came back: the next command first checks the shell is still ours.</summary>
    public bool NeedsCheck => IsReady && _link.Generation != _generation;

    /// <summary>Set when the shell could not be recovered; every later command fails fast as infrastructure.</summary>
    public string? BrokenReason { get; private set; }

    public bool IsBroken => BrokenReason is not null;

    /// <summary>Raised once when the shell is found unrecoverable.</summary>
    public event Action<string>? Broken;

    /// <summary>Raised after every command, with the console offset range it covered (for per-test slicing and watchers).</summary>
    public Func<ShellResult, Task>? AfterCommand { get; set; }

    /// <summary>
    /// Logs in (login prompt, password prompt, or none for an auto-login console), then sets the
    /// shell up. Kernel messages between or inside prompts do not matter: they are stripped first.
    /// </summary>
    public async Task LoginAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await LoginCoreAsync(timeout, ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task LoginCoreAsync(TimeSpan timeout, CancellationToken ct)
    {
        ThrowIfBroken();
        IsReady = false;
        var deadline = Stopwatch.StartNew();
        var loginRe = new Regex(_login.LoginPrompt, RegexOptions.Multiline);
        var passRe = new Regex(_login.PasswordPrompt, RegexOptions.Multiline);
        var shellRe = new Regex(_login.ShellPrompt, RegexOptions.Multiline);
        var mark = _link.Buffer.Start;
        var lastGrowth = Stopwatch.StartNew();
        var lastEnd = _link.Buffer.End;
        var refusals = 0;
        var sentPassword = false;
        while (true)
        {
            var remaining = timeout - deadline.Elapsed;
            if (remaining <= TimeSpan.Zero)
                throw new InfrastructureException($"no shell on console {_link.Address} within {timeout.TotalSeconds:0} s (login prompt '{_login.LoginPrompt}', shell prompt '{_login.ShellPrompt}')",
                    evidence: Tail(mark));
            var text = Printable(_link.Buffer.Read(mark, out _));
            var tail = LastLine(text);
            if (_login.User is not null && Regex.IsMatch(text, "(Login incorrect|Authentication failure|incorrect password)", RegexOptions.IgnoreCase) && sentPassword)
            {
                sentPassword = false;
                if (++refusals >= 2)
                    throw new TestErrorException($"console login as '{_login.User}' refused twice: check login.user and login.password of the board file");
            }
            if (_login.User is not null && loginRe.IsMatch(tail))
            {
                _log.Debug("login prompt seen; sending user {User}", _login.User);
                mark = _link.Buffer.End;
                await _link.WriteAsync(_login.User + "\n", ct).ConfigureAwait(false);
                continue;
            }
            if (_login.User is not null && passRe.IsMatch(tail))
            {
                mark = _link.Buffer.End;
                // The password goes to the console only; it is never logged by the harness, and if the
                // board echoes it (a login without echo off, a serial getty misconfigured) the console
                // logs show '*'s instead (masked before the bytes are written; see ConsoleLog.Mask).
                var password = _login.Password?.Resolve() ?? "";
                _password = password;
                _link.Log.Mask(password);
                await _link.WriteAsync(password + "\n", ct).ConfigureAwait(false);
                sentPassword = true;
                continue;
            }
            var quiet = lastGrowth.Elapsed >= Options.LoginPoke;
            if (shellRe.IsMatch(tail) || (_login.User is null && quiet))
            {
                if (await SetupCoreAsync(Min(Options.SetupTimeout, remaining), ct).ConfigureAwait(false)) return;
                mark = _link.Buffer.End;
                lastGrowth.Restart();
                continue;
            }
            if (quiet)
            {
                // Nothing recognisable and nothing new: a fresh prompt is one Enter away.
                mark = _link.Buffer.End;
                await _link.WriteAsync("\n", ct).ConfigureAwait(false);
                lastGrowth.Restart();
                continue;
            }
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
            wait.CancelAfter(Min(Options.LoginPoke - lastGrowth.Elapsed + TimeSpan.FromMilliseconds(20), remaining));
            try
            {
                await _link.Buffer.WaitBeyondAsync(lastEnd, wait.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
            }
            if (_link.Buffer.End != lastEnd)
            {
                lastEnd = _link.Buffer.End;
                lastGrowth.Restart();
            }
        }
    }

    /// <summary>Makes the shell predictable; true when the board answered the setup marker in time.</summary>
    private async Task<bool> SetupCoreAsync(TimeSpan timeout, CancellationToken ct)
    {
        Stats.Setups++;
        var token = RandomToken(12);
        var sync = $"u{Interlocked.Increment(ref _sync)}";
        var q = ShellQuote.Quote;
        // The token is written split ('HI''L:ab''cd'), so the echo of this text never contains a marker.
        var key = $"'HI''L:{token[..6]}''{token[6..]}'";
        var lines = new[]
        {
            // Every fork costs tens of milliseconds on an emulated board: one stty (three only if
            // this one refuses an option), one command substitution for the two bytes printf makes.
            $"stty -echo -onlcr cols {_shell.Columns} 2>/dev/null || {{ stty -echo; stty -onlcr; stty cols {_shell.Columns}; }} 2>/dev/null",
            "PS2=''",
            "set +o emacs 2>/dev/null",
            "set +o vi 2>/dev/null",
            "set +o history 2>/dev/null",
            "unset HISTFILE",
            // The scratch file holds each command's output: on tmpfs where possible (a disk with
            // online discard made every truncation cost milliseconds).
            (_shell.ScratchDir is { } dir
                ? $"hil_f={q(dir.TrimEnd('/'))}; "
                : "for hil_f in /dev/shm /run /tmp; do [ -d \"$hil_f\" ] && [ -w \"$hil_f\" ] && break; done; ")
            + $"hil_f=$hil_f/.hil-$$; hil_k={key}; hil_x=$(printf '\\036\\n_'); hil_nl=${{hil_x#?}}; hil_nl=${{hil_nl%_}}; hil_rs=${{hil_x%\"$hil_nl\"_}}",
            // Large outputs are checked with the board's cksum when it has one (busybox often lacks it).
            "hil_ck=; command -v cksum >/dev/null 2>&1 && hil_ck=1",
            // Run a command only if it arrived whole; keep its output in the scratch file.
            "hil_c() { if [ \"$1\" != \"$2\" ] || [ \"$5\" != \"$6\" ] || { [ \"${#5}\" != \"$3\" ] && [ \"${#5}\" != \"$4\" ]; }; then printf '\\036%s:%s:i\\036\\n' \"$hil_k\" \"$1\"; return 0; fi; hil_n=$1 hil_y=$5; set --; command eval \"$hil_y\" >\"$hil_f\" 2>&1 </dev/null; hil_rc=$? hil_d=$hil_n; hil_p 0; }",
            // Print the frame of the last command: small outputs twice, large ones with their cksum.
            "hil_p() { hil_b= hil_l= hil_m=d; while IFS= read -r hil_l; do hil_b=\"$hil_b$hil_l$hil_nl\"; hil_l=; if [ -n \"$hil_ck\" ] && [ ${#hil_b} -gt 4096 ]; then hil_m=c; break; fi; done <\"$hil_f\"; hil_b=\"$hil_b$hil_l\"; "
            + "if [ $hil_m = d ]; then printf '\\036%s:%s:%s:h:%s:%s:%s:%s:d\\036\\n%s\\036%s:%s:%s:m\\036\\n%s\\036%s:%s:%s:e\\036\\n' \"$hil_k\" $hil_d $1 $hil_rc ${#hil_b} $hil_rc ${#hil_b} \"$hil_b\" \"$hil_k\" $hil_d $1 \"$hil_b\" \"$hil_k\" $hil_d $1; "
            + "else set -- $1 $(cksum <\"$hil_f\"); printf '\\036%s:%s:%s:h:%s:%s:%s:%s:%s:%s:c\\036\\n' \"$hil_k\" $hil_d $1 $hil_rc $2 $3 $hil_rc $2 $3; cat \"$hil_f\"; printf '\\036%s:%s:%s:e\\036\\n' \"$hil_k\" $hil_d $1; fi; }",
            "hil_r() { if [ \"$hil_d\" = \"$1\" ]; then hil_p $2; else printf '\\036%s:%s:%s:x\\036\\n' \"$hil_k\" $1 $2; fi; }",
            "hil_s() { printf '\\036%s:s%s:%s:%s\\036\\n' \"$hil_k\" $1 \"${hil_n:-0}\" \"${hil_d:-0}\"; }",
            "PS1=\"$hil_rs$hil_k:p$hil_rs \"",
            $"printf '\\036%s:setup:%s\\036\\n' \"$hil_k\" {sync}",
        };
        var start = _link.Buffer.End;
        UseToken(token);
        await _link.WriteAsync(string.Join("\n", lines) + "\n", ct).ConfigureAwait(false);
        var end = await WaitForMarkerAsync(start, $"setup:{sync}", timeout, ct).ConfigureAwait(false);
        if (end is null)
        {
            _log.Debug("shell setup on {Console} not answered within {Timeout}", _link.Address, timeout);
            return false;
        }
        _scanFrom = end.Value;
        _link.Buffer.Discard(_scanFrom);
        IsReady = true;
        _generation = _link.Generation;
        _log.Information("shell on {Console} is set up", _link.Address);
        return true;
    }

    /// <summary>Runs a command; returns its merged output and exit code, whatever else the console printed.</summary>
    /// <exception cref="CommandTimeoutException">the command did not finish in time (the shell was recovered)</exception>
    /// <exception cref="BoardBrokenException">the shell could not be recovered</exception>
    /// <exception cref="InfrastructureException">the console kept corrupting the command or its answer</exception>
    public async Task<ShellResult> RunAsync(string command, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        CheckCommand(command);
        var limit = timeout ?? _shell.CommandTimeout;
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        ShellResult result;
        try
        {
            ThrowIfBroken();
            if (!IsReady) throw new TestErrorException("the console shell is not logged in yet: call LoginAsync (or board.EnsureShellAsync) first");
            // A device that came back may carry a rebooted board: check before trusting the shell again.
            await _link.WaitConnectedAsync(ct).ConfigureAwait(false);
            if (NeedsCheck) await RecheckAsync(ct).ConfigureAwait(false);
            Stats.Commands++;
            result = await RunCoreAsync(command, limit, ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
        if (AfterCommand is { } after) await after(result).ConfigureAwait(false);
        return result;
    }

    /// <summary>Runs a command and fails (as a product failure) unless it exits 0.</summary>
    public async Task<ShellResult> RunCheckedAsync(string command, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var r = await RunAsync(command, timeout, ct).ConfigureAwait(false);
        if (r.ExitCode != 0)
            throw new ProductFailureException($"command exited {r.ExitCode}: {command}", r.Output.Split('\n').TakeLast(20).ToList());
        return r;
    }

    private static void CheckCommand(string command)
    {
        if (string.IsNullOrWhiteSpace(command)) throw new TestErrorException("empty command");
        // A canonical tty gives control characters meanings (erase, kill, EOF, interrupt, CR->NL):
        // they would change the command on its way, so they are refused rather than mangled.
        foreach (var c in command)
            if ((c < ' ' && c != '\n' && c != '\t') || c == '\x7f')
                throw new TestErrorException($"command contains control character 0x{(int)c:X2}; a console shell cannot carry it intact (use SSH)");
        var quoted = ShellQuote.Quote(command);
        // The command travels twice on its line (see hil_c), so it must fit twice.
        if (quoted.Split('\n').Any(l => 2 * Encoding.UTF8.GetByteCount(l) > MaxLineBytes - 60))
            throw new TestErrorException($"a line of the command is longer than a console line can hold ({MaxLineBytes} bytes); upload a script instead");
    }

    private async Task<ShellResult> RunCoreAsync(string command, TimeSpan limit, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var quoted = ShellQuote.Quote(command);
        var bytes = Encoding.UTF8.GetByteCount(command);
        var chars = command.EnumerateRunes().Count();
        var commandResends = 0;
        var frameResends = 0;
    sendCommand:
        var seq = Interlocked.Increment(ref _seq);
        await _link.WriteAsync($"hil_c {seq} {seq} {bytes} {chars} {quoted} {quoted}\n", ct).ConfigureAwait(false);
        var handled = new HashSet<string>();
        // Probes waiting for an answer; a probe can itself be lost, so a long silence sends another.
        var probes = new HashSet<string>();
        var attempt = 0;
        var lastEnd = _link.Buffer.End;
        var lastGrowth = Stopwatch.StartNew();
        var parsedUpTo = -1L;
        while (true)
        {
            if (_link.Generation != _generation)
                throw new InfrastructureException($"console {_link.Address} was lost while a command ran; its result is unknown: {command}");
            var end = _link.Buffer.End;
            if (end != lastEnd)
            {
                lastEnd = end;
                lastGrowth.Restart();
            }
            // Markers always contain 0x1E: only re-parse when one may have arrived.
            if (end != parsedUpTo && HasMarkerByte(parsedUpTo < 0 ? _scanFrom : parsedUpTo))
            {
                parsedUpTo = end;
                var view = View.Of(_link.Buffer.Read(_scanFrom, out var viewStart), viewStart, _marker);
                foreach (var m in view.Markers)
                {
                    var f = m.Fields;
                    if (f == $"{seq}:i" && handled.Add(f))
                    {
                        // The board refused the line: it did not arrive intact, and it did not run.
                        if (++commandResends > Options.MaxCommandResends)
                            throw new InfrastructureException($"console {_link.Address} corrupted the command line {commandResends} times: {command}");
                        Stats.CommandsResent++;
                        Consume(view, m);
                        goto sendCommand;
                    }
                    if (f.StartsWith('s') && f.IndexOf(':') is > 1 and var colon && probes.Contains(f[1..colon]) && handled.Add(f))
                    {
                        probes.Clear();
                        var parts = f.Split(':');
                        var started = int.Parse(parts[1]);
                        var done = int.Parse(parts[2]);
                        if (started < seq)
                        {
                            // The shell is idle and never started this command: the line was lost. Safe to resend.
                            if (++commandResends > Options.MaxCommandResends)
                                throw new InfrastructureException($"console {_link.Address} lost the command line {commandResends} times: {command}");
                            Stats.CommandsResent++;
                            Consume(view, m);
                            goto sendCommand;
                        }
                        if (started == seq && done < seq)
                        {
                            // The shell itself abandoned the command line (an error in a special builtin):
                            // there is no exit status to report, and the shell is idle again.
                            Consume(view, m);
                            throw new TestErrorException($"the shell abandoned the command without an exit status (a syntax error in a special builtin?): {command}");
                        }
                        if (started == seq && done == seq && view.TryFrame(seq, out _) is null)
                        {
                            if (++frameResends > Options.MaxFrameResends)
                                throw new InfrastructureException($"console {_link.Address} corrupted the answer to a command {frameResends} times: {command}");
                            Stats.FramesResent++;
                            attempt++;
                            await _link.WriteAsync($"hil_r {seq} {attempt}\n", ct).ConfigureAwait(false);
                        }
                    }
                }
                if (view.TryFrame(seq, out var bad) is { } frame)
                {
                    Stats.KernelLinesRemoved += frame.Dropped.Count;
                    _scanFrom = frame.EndOffset;
                    _link.Buffer.Discard(_scanFrom);
                    return new ShellResult(command, frame.ExitCode, frame.Output, frame.Dropped, clock.Elapsed);
                }
                // A complete but inconsistent frame of the latest attempt: ask for it again.
                if (bad is { } b && b.Attempt == attempt && handled.Add($"bad:{b.Attempt}"))
                {
                    if (++frameResends > Options.MaxFrameResends)
                        throw new InfrastructureException($"console {_link.Address} corrupted the answer to a command {frameResends} times: {command}");
                    Stats.FramesResent++;
                    attempt++;
                    await _link.WriteAsync($"hil_r {seq} {attempt}\n", ct).ConfigureAwait(false);
                    lastGrowth.Restart();
                    continue;
                }
            }
            var remaining = limit - clock.Elapsed;
            if (remaining <= TimeSpan.Zero) break;
            var probeDue = probes.Count == 0 ? Options.QuietProbe : Options.QuietProbe * 4;
            if (probes.Count < 3 && lastGrowth.Elapsed >= probeDue)
            {
                // Silence and no frame: either the command is still running (the probe waits behind
                // it in the tty) or something was lost; the probe's answer tells which.
                var probe = $"{seq}x{Interlocked.Increment(ref _sync)}";
                probes.Add(probe);
                Stats.Probes++;
                await _link.WriteAsync($"hil_s {probe}\n", ct).ConfigureAwait(false);
                lastGrowth.Restart();
                continue;
            }
            var wait = probes.Count < 3 ? Min(remaining, probeDue - lastGrowth.Elapsed + TimeSpan.FromMilliseconds(5)) : remaining;
            await _link.WaitForDataAsync(end, wait < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : wait, ct).ConfigureAwait(false);
        }
        Stats.Timeouts++;
        _log.Warning("command timed out after {Timeout}: {Command}; interrupting", limit, command);
        if (await InterruptAndResyncAsync(ct).ConfigureAwait(false))
            throw new CommandTimeoutException(command, limit, FailureClass.Product, "interrupted; the shell was resynchronised");
        throw MarkBroken($"the shell on {_link.Address} did not recover after a command timed out ({command})");
    }

    private bool HasMarkerByte(long from)
    {
        var bytes = _link.Buffer.Read(from, out _);
        return Array.IndexOf(bytes, (byte)0x1E) >= 0;
    }

    private void Consume(View view, View.Marker m)
    {
        _scanFrom = view.RawOffset(m.CleanEnd);
        _link.Buffer.Discard(_scanFrom);
    }

    /// <summary>Ctrl-C, then a fresh marker; repeated, then a full setup. True when the shell answers.</summary>
    private async Task<bool> InterruptAndResyncAsync(CancellationToken ct)
    {
        for (var i = 0; i < Options.ResyncAttempts; i++)
        {
            Stats.Resyncs++;
            try
            {
                await _link.WriteAsync("\x03", ct).ConfigureAwait(false);
                // Ctrl-C flushes the tty's pending input: let that happen before the marker goes out.
                await Task.Delay(100, ct).ConfigureAwait(false);
                var sync = $"r{Interlocked.Increment(ref _sync)}";
                var start = _link.Buffer.End;
                await _link.WriteAsync($"hil_s {sync}\n", ct).ConfigureAwait(false);
                var end = await WaitForMarkerPrefixAsync(start, $"s{sync}:", Options.ResyncTimeout, ct).ConfigureAwait(false);
                if (end is not null)
                {
                    _scanFrom = end.Value;
                    _link.Buffer.Discard(_scanFrom);
                    return true;
                }
            }
            catch (LinkLostException)
            {
                // The device may come back within the next attempt.
            }
        }
        try
        {
            // Last resort: the functions may be gone (the command replaced the shell, or it is a new shell).
            await _link.WriteAsync("\x03\n", ct).ConfigureAwait(false);
            await Task.Delay(100, ct).ConfigureAwait(false);
            return await SetupCoreAsync(Options.SetupTimeout, ct).ConfigureAwait(false);
        }
        catch (LinkLostException)
        {
            return false;
        }
    }

    /// <summary>After the device came back: resynchronise, or log in again (the board may have rebooted).</summary>
    private async Task RecheckAsync(CancellationToken ct)
    {
        _generation = _link.Generation;
        // Let a fresh boot or login prompt arrive; if it is a login prompt, a probe would only be taken for a user name.
        var quiet = Stopwatch.StartNew();
        var total = Stopwatch.StartNew();
        var seen = _link.Buffer.End;
        while (quiet.Elapsed < TimeSpan.FromMilliseconds(300) && total.Elapsed < TimeSpan.FromSeconds(3))
        {
            await Task.Delay(50, ct).ConfigureAwait(false);
            if (_link.Buffer.End != seen)
            {
                seen = _link.Buffer.End;
                quiet.Restart();
            }
        }
        if (_login.User is not null && new Regex(_login.LoginPrompt, RegexOptions.Multiline).IsMatch(LastLine(Printable(_link.Buffer.Read(_scanFrom, out _)))))
        {
            await LoginAfterLossAsync(ct).ConfigureAwait(false);
            return;
        }
        var sync = $"c{Interlocked.Increment(ref _sync)}";
        var start = _link.Buffer.End;
        await _link.WriteAsync($"\x03hil_s {sync}\n", ct).ConfigureAwait(false);
        if (await WaitForMarkerPrefixAsync(start, $"s{sync}:", Options.RecheckTimeout, ct).ConfigureAwait(false) is { } end)
        {
            _scanFrom = end;
            _link.Buffer.Discard(_scanFrom);
            return;
        }
        await LoginAfterLossAsync(ct).ConfigureAwait(false);
    }

    private async Task LoginAfterLossAsync(CancellationToken ct)
    {
        _log.Information("shell on {Console} is not ours after the link came back; logging in again", _link.Address);
        try
        {
            await LoginCoreAsync(_login.Timeout, ct).ConfigureAwait(false);
        }
        catch (InfrastructureException ex)
        {
            throw MarkBroken($"the shell on {_link.Address} is gone after the link came back: {ex.Message}");
        }
    }

    private Task<long?> WaitForMarkerAsync(long from, string fields, TimeSpan timeout, CancellationToken ct) =>
        WaitForAsync(from, m => m.Fields == fields, timeout, ct);

    private Task<long?> WaitForMarkerPrefixAsync(long from, string prefix, TimeSpan timeout, CancellationToken ct) =>
        WaitForAsync(from, m => m.Fields.StartsWith(prefix, StringComparison.Ordinal), timeout, ct);

    /// <summary>Waits for a marker; returns the raw offset just past it, or null on timeout.</summary>
    private async Task<long?> WaitForAsync(long from, Func<View.Marker, bool> match, TimeSpan timeout, CancellationToken ct)
    {
        // One deadline for the whole wait, not a linked token source and a timer per chunk of output.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout > TimeSpan.Zero ? timeout : TimeSpan.Zero);
        while (true)
        {
            var view = View.Of(_link.Buffer.Read(from, out var viewStart), viewStart, _marker);
            foreach (var m in view.Markers)
                if (match(m)) return view.RawOffset(m.CleanEnd);
            try
            {
                await _link.Buffer.WaitBeyondAsync(viewStart + view.RawLength, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return null;
            }
        }
    }

    private BoardBrokenException MarkBroken(string reason)
    {
        IsReady = false;
        if (BrokenReason is null)
        {
            BrokenReason = reason;
            _log.Error("console shell broken: {Reason}", reason);
            Broken?.Invoke(reason);
        }
        return new BoardBrokenException(reason, evidence: Tail(_link.Buffer.Start));
    }

    /// <summary>Marks the shell unusable from outside (e.g. the board session gave up on it).</summary>
    public void MarkBrokenBy(string reason) => _ = MarkBroken(reason);

    private void ThrowIfBroken()
    {
        if (BrokenReason is { } r) throw new BoardBrokenException($"board session is broken: {r}");
    }

    private void UseToken(string token)
    {
        _token = token;
        _marker = new Regex("\x1eHIL:" + token + ":([^\x1e\n]*)\x1e", RegexOptions.CultureInvariant);
    }

    private List<string> Tail(long from)
    {
        var text = Printable(_link.Buffer.Read(from, out _));
        // Evidence ends up in results files: an echoed password must not travel with it.
        if (_password is { Length: > 0 } pw) text = text.Replace(pw, new string('*', pw.Length), StringComparison.Ordinal);
        return text.Split('\n').TakeLast(15).ToList();
    }

    /// <summary>Console text for prompt matching: kernel lines, escape sequences and CRs removed.</summary>
    internal static string Printable(byte[] bytes) => Plain(KernelLogFilter.Strip(Encoding.Latin1.GetString(bytes)));

    /// <summary>Console text with escape sequences and CRs removed (kernel lines kept: boot stages match them).</summary>
    internal static string Plain(byte[] bytes) => Plain(Encoding.Latin1.GetString(bytes));

    private static string Plain(string text) =>
        Regex.Replace(text, @"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]", "").Replace("\r", "");

    private static string LastLine(string text)
    {
        var i = text.LastIndexOf('\n');
        return i < 0 ? text : text[(i + 1)..];
    }

    private static string RandomToken(int n)
    {
        // Letters only: the token can never be read as a number or a shell word boundary.
        const string alphabet = "abcdefghjkmnpqstuvwxyz";
        return string.Create(n, 0, (span, _) =>
        {
            for (var i = 0; i < span.Length; i++) span[i] = alphabet[RandomNumberGenerator.GetInt32(alphabet.Length)];
        });
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    /// <summary>
    /// A view of the console bytes since the last consumed frame, with kernel lines removed, and the
    /// markers found in it. Frames are validated here.
    /// </summary>
    private sealed class View
    {
        private readonly long _rawStart;
        private readonly string _clean;
        private readonly List<KernelLogFilter.Segment> _removed;

        private View(long rawStart, int rawLength, string clean, List<KernelLogFilter.Segment> removed, List<Marker> markers)
        {
            _rawStart = rawStart;
            RawLength = rawLength;
            _clean = clean;
            _removed = removed;
            Markers = markers;
        }

        public int RawLength { get; }
        public List<Marker> Markers { get; }

        public sealed record Marker(string Fields, int CleanStart, int CleanEnd);

        public sealed record Frame(int ExitCode, string Output, List<string> Dropped, long EndOffset);

        public sealed record BadFrame(int Attempt);

        public static View Of(byte[] raw, long rawStart, Regex marker)
        {
            var latin1 = Encoding.Latin1.GetString(raw);
            var clean = KernelLogFilter.Clean(latin1, out var removed);
            var markers = new List<Marker>();
            foreach (Match m in marker.Matches(clean))
                markers.Add(new Marker(m.Groups[1].Value, m.Index, m.Index + m.Length));
            return new View(rawStart, raw.Length, clean, removed, markers);
        }

        /// <summary>Absolute raw offset of a position in the clean text (kernel lines before it counted back in).</summary>
        public long RawOffset(int cleanPos)
        {
            var extra = 0;
            foreach (var s in _removed)
                if (s.CleanPosition <= cleanPos) extra += s.Text.Length;
            return _rawStart + cleanPos + extra;
        }

        /// <summary>The first valid frame of command <paramref name="seq"/>; else null, and the latest complete but invalid attempt.</summary>
        public Frame? TryFrame(int seq, out BadFrame? bad)
        {
            bad = null;
            var prefix = $"{seq}:";
            for (var i = 0; i < Markers.Count; i++)
            {
                var h = Markers[i];
                if (!h.Fields.StartsWith(prefix, StringComparison.Ordinal)) continue;
                var f = h.Fields.Split(':');
                if (f.Length < 3 || f[2] != "h" || !int.TryParse(f[1], out var att)) continue;
                var end = FindAfter(i, $"{seq}:{att}:e");
                if (end < 0) continue;
                var frame = Validate(f, att, h, i, end, seq);
                if (frame is not null) return frame;
                bad = new BadFrame(att);
            }
            // An end marker whose header was lost also makes a complete, invalid attempt.
            foreach (var m in Markers)
            {
                var f = m.Fields.Split(':');
                if (f.Length == 3 && f[0] == seq.ToString() && f[2] == "e" && int.TryParse(f[1], out var a) && (bad is null || a > bad.Attempt)
                    && !Markers.Any(x => x.Fields.StartsWith($"{seq}:{a}:h:", StringComparison.Ordinal)))
                    bad = new BadFrame(a);
            }
            return null;
        }

        private int FindAfter(int index, string fields)
        {
            for (var j = index + 1; j < Markers.Count; j++)
                if (Markers[j].Fields == fields) return j;
            return -1;
        }

        private Frame? Validate(string[] f, int att, Marker h, int hi, int ei, int seq)
        {
            var bodyStart = h.CleanEnd;
            if (bodyStart >= _clean.Length || _clean[bodyStart] != '\n') return null;
            bodyStart++;
            var endMarker = Markers[ei];
            if (f.Length == 8 && f[7] == "d")
            {
                // seq:att:h:rc:len:rc:len:d — every field twice, so a lost digit cannot pass.
                if (f[3] != f[5] || f[4] != f[6] || !int.TryParse(f[3], out var rc) || !int.TryParse(f[4], out var len)) return null;
                var mi = -1;
                for (var j = hi + 1; j < ei; j++)
                    if (Markers[j].Fields == $"{seq}:{att}:m") mi = j;
                if (mi < 0) return null;
                var mid = Markers[mi];
                var copy2Start = mid.CleanEnd;
                if (copy2Start >= _clean.Length || _clean[copy2Start] != '\n') return null;
                copy2Start++;
                var seconds = new Dictionary<string, List<KernelLogFilter.Segment>>();
                foreach (var (body, dropped) in KernelLogFilter.Candidates(_clean, copy2Start, endMarker.CleanStart, _removed))
                    seconds.TryAdd(body, dropped);
                foreach (var (body, dropped) in KernelLogFilter.Candidates(_clean, bodyStart, mid.CleanStart, _removed))
                {
                    if (!seconds.TryGetValue(body, out var dropped2) || !LengthMatches(body, len)) continue;
                    return new Frame(rc, Decode(body), dropped.Concat(dropped2).Select(s => s.Text.TrimEnd('\n', '\r')).ToList(), RawOffset(endMarker.CleanEnd) + 0);
                }
                return null;
            }
            if (f.Length == 10 && f[9] == "c")
            {
                // seq:att:h:rc:crc:len:rc:crc:len:c — large output, checked by the board's own cksum.
                if (f[3] != f[6] || f[4] != f[7] || f[5] != f[8] || !int.TryParse(f[3], out var rc)
                    || !uint.TryParse(f[4], out var crc) || !long.TryParse(f[5], out var len)) return null;
                foreach (var (body, dropped) in KernelLogFilter.Candidates(_clean, bodyStart, endMarker.CleanStart, _removed))
                {
                    var bytes = Encoding.Latin1.GetBytes(body);
                    if (bytes.Length == len && PosixCksum.Compute(bytes) == crc)
                        return new Frame(rc, Decode(body), dropped.Select(s => s.Text.TrimEnd('\n', '\r')).ToList(), RawOffset(endMarker.CleanEnd));
                }
            }
            return null;
        }

        // The shell counts bytes (dash, C locale) or characters (bash in a UTF-8 locale).
        private static bool LengthMatches(string latin1Body, int len) =>
            latin1Body.Length == len || Decode(latin1Body).EnumerateRunes().Count() == len;

        private static string Decode(string latin1) => Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(latin1));
    }
}
