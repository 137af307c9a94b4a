using System.Diagnostics;
using System.Text.RegularExpressions;
using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Boards.Links;
using Hil.Boards.Power;
using Hil.Boards.Shell;
using Serilog;

namespace Hil.Boards.Boot;

/// <summary>Where a board is on its way up.</summary>
public enum BootStage { Unknown, Off, Firmware, Bootloader, Kernel, Login, Shell }

/// <summary>
/// The boot state machine: off → firmware → bootloader → kernel → login → shell, each stage proven by
/// console text within its own timeout. Stages the board file leaves out are skipped. At the
/// bootloader stage it can stop autoboot and type commands (e.g. U-Boot <c>setenv</c> + <c>boot</c>).
/// A stage that times out with a silent console is infrastructure (power or console dead); with a
/// talking console it is the product (the board did not boot).
/// </summary>
public sealed class BootSequencer(BoardSpec board, ConsoleLink console, IPowerDriver power, ILogger logger)
{
    private readonly ILogger _log = logger.ForContext<BootSequencer>();

    public BootStage Stage { get; private set; } = BootStage.Unknown;

    /// <summary>What the boot is doing now, for messages: "switching power", "waiting for boot stage Firmware", …</summary>
    public string Waiting { get; private set; } = "not booting";

    /// <summary>Raised when a stage is reached (for logs and reports).</summary>
    public event Action<BootStage>? StageReached;

    /// <summary>Power-cycles (or powers on) and drives the console through the configured stages up to the kernel.</summary>
    public async Task BootAsync(CancellationToken ct)
    {
        var mark = console.Buffer.End;
        Enter(BootStage.Off);
        Waiting = $"switching power ({power.Name})";
        await power.CycleAsync(ct).ConfigureAwait(false);
        var b = board.Boot;
        if (b.Firmware is { } fw)
            mark = await ExpectAsync(BootStage.Firmware, fw, mark, ct).ConfigureAwait(false);
        if (b.Bootloader is { } bl)
        {
            mark = await ExpectAsync(BootStage.Bootloader, bl, mark, ct).ConfigureAwait(false);
            if (bl.Interrupt is { } intr) mark = await InterruptAsync(intr, mark, ct).ConfigureAwait(false);
        }
        if (b.Kernel is { } k)
            mark = await ExpectAsync(BootStage.Kernel, k, mark, ct).ConfigureAwait(false);
        Enter(BootStage.Login);
        Waiting = "logging in on the console";
    }

    /// <summary>Marks the shell stage reached (the console shell logged in).</summary>
    public void ShellReached()
    {
        Enter(BootStage.Shell);
        Waiting = "at the shell";
    }

    private void Enter(BootStage stage)
    {
        Stage = stage;
        _log.Information("boot stage {Stage}", stage);
        StageReached?.Invoke(stage);
    }

    private async Task<long> ExpectAsync(BootStage stage, StageSpec spec, long from, CancellationToken ct)
    {
        var re = new Regex(spec.Expect, RegexOptions.Multiline);
        Waiting = $"waiting for boot stage {stage} (/{spec.Expect}/)";
        var end = await WaitForAsync(re, from, spec.Timeout, ct).ConfigureAwait(false);
        if (end is null)
        {
            var silent = console.Buffer.End == from;
            var msg = $"boot stage {stage} not reached within {spec.Timeout.TotalSeconds:0} s (expected /{spec.Expect}/ on {console.Address})";
            var evidence = ConsoleShell.Plain(console.Buffer.Read(from, out _)).Split('\n').TakeLast(15).ToList();
            if (silent) throw new InfrastructureException(msg + "; the console stayed silent: power or console link?", evidence: evidence);
            throw new ProductFailureException(msg, evidence);
        }
        Enter(stage);
        return end.Value;
    }

    /// <summary>Stops autoboot by sending the key until the bootloader prompt shows, then types the commands.</summary>
    private async Task<long> InterruptAsync(InterruptSpec intr, long from, CancellationToken ct)
    {
        var prompt = new Regex(intr.Prompt + "$", RegexOptions.Multiline);
        // Keys sent while the countdown was still printing reach the prompt late (a slow link, a
        // console server in between) and are echoed after it: the prompt followed only by echoes
        // of the key is the prompt too.
        var stopped = new Regex(intr.Prompt + "(?:" + Regex.Escape(intr.Send) + ")*$", RegexOptions.Multiline);
        var clock = Stopwatch.StartNew();
        long? at = null;
        var sent = 0;
        while (at is null)
        {
            if (clock.Elapsed > intr.CommandTimeout)
                throw new ProductFailureException($"bootloader did not stop at /{intr.Prompt}/ within {intr.CommandTimeout.TotalSeconds:0} s",
                    ConsoleShell.Plain(console.Buffer.Read(from, out _)).Split('\n').TakeLast(15).ToList());
            await console.WriteAsync(intr.Send, ct).ConfigureAwait(false);
            sent++;
            at = await WaitForAsync(stopped, from, TimeSpan.FromMilliseconds(200), ct).ConfigureAwait(false);
        }
        // Keys sent after the prompt appeared print more prompts: let them settle (50 ms of silence,
        // at most 300 ms), then work after the last. One key stopped it: nothing to settle.
        if (sent > 1) await QuietAsync(TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(300), ct).ConfigureAwait(false);
        var mark = console.Buffer.End;
        for (var i = 0; i < intr.Commands.Count; i++)
        {
            var cmd = intr.Commands[i];
            _log.Information("bootloader: {Command}", cmd);
            await console.WriteAsync(cmd + "\n", ct).ConfigureAwait(false);
            if (i == intr.Commands.Count - 1) break; // the last command usually boots: no prompt follows
            var next = await WaitForAsync(prompt, mark, intr.CommandTimeout, ct).ConfigureAwait(false)
                       ?? throw new ProductFailureException($"bootloader did not come back to its prompt after '{cmd}'",
                           ConsoleShell.Plain(console.Buffer.Read(mark, out _)).Split('\n').TakeLast(15).ToList());
            mark = next;
        }
        return mark;
    }

    private async Task QuietAsync(TimeSpan quiet, TimeSpan max, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < max)
        {
            var end = console.Buffer.End;
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(quiet);
            try
            {
                await console.Buffer.WaitBeyondAsync(end, cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return;   // nothing new for `quiet`
            }
        }
    }

    /// <summary>The byte offset just past the line that holds text position <paramref name="at"/> (the text keeps every '\n' of the bytes).</summary>
    private static int EndOfLine(byte[] bytes, string text, int at)
    {
        var newlines = 0;
        for (var i = 0; i < at && i < text.Length; i++) if (text[i] == '\n') newlines++;
        // The match's line ends at the (newlines+1)-th '\n' of the bytes; unterminated: the end.
        for (var i = 0; i < bytes.Length; i++)
            if (bytes[i] == (byte)'\n' && newlines-- == 0) return i + 1;
        return bytes.Length;
    }

    /// <summary>
    /// Waits until the printable console text since <paramref name="from"/> matches; returns the offset
    /// after the match's line. Stage patterns match within one line, so each look scans only from the
    /// start of the last unfinished line: a kernel's boot log arrives in hundreds of chunks, and
    /// rescanning all of it on every chunk cost the harness CPU time that a TCG guest sharing the
    /// host's cores then lacked.
    /// </summary>
    private async Task<long?> WaitForAsync(Regex re, long from, TimeSpan timeout, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout > TimeSpan.Zero ? timeout : TimeSpan.Zero);
        var scanFrom = from;
        while (true)
        {
            var bytes = console.Buffer.Read(scanFrom, out var start);
            var text = ConsoleShell.Plain(bytes);
            var m = re.Match(text);
            // Only up to the end of the matching line is consumed: one burst of output may hold the
            // next stage's banner too (QEMU boots faster than a loaded host reads), and the next
            // stage must still find it.
            if (m.Success) return start + EndOfLine(bytes, text, m.Index + m.Length);
            var lastNewline = Array.LastIndexOf(bytes, (byte)'\n');
            if (lastNewline >= 0) scanFrom = start + lastNewline + 1;
            try
            {
                await console.Buffer.WaitBeyondAsync(start + bytes.Length, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return null;
            }
        }
    }
}
