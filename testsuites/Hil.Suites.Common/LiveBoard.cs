using Hil.Boards;
using Hil.Boards.Failures;
using Hil.Qemu.Board;

namespace Hil.Suites.Common;

/// <summary>
/// One booted session of a board: the board-access session (console shell, SSH, power, logs), the
/// QEMU session when the board is a QEMU one, the facts read after this boot, and whether the
/// session is still usable. A session is never repaired in place: when it is lost (QEMU died, the
/// shell could not be recovered, an infrastructure failure left it in an unknown state) the
/// <see cref="BoardProvider"/> closes it and boots a fresh one for the next test.
/// </summary>
public sealed class LiveBoard : IAsyncDisposable
{
    private readonly CancellationTokenSource _lost = new();
    private volatile string? _lostReason;
    private volatile string? _condemned;
    private volatile bool _closing;
    private int _disposed;

    internal LiveBoard(BoardTarget target, int session, Board board, QemuBoardSession? qemu, string logDirectory, string bootReason)
    {
        Target = target;
        Session = session;
        Board = board;
        Qemu = qemu;
        LogDirectory = logDirectory;
        BootReason = bootReason;
    }

    public BoardTarget Target { get; }
    /// <summary>1 for the first boot of this board in this process, then 2, 3, … for every fresh boot.</summary>
    public int Session { get; }
    /// <summary>The board-access session: <c>Board.Shell</c> (console), <c>Board.Ssh</c>, <c>Board.Power</c>, logs.</summary>
    public Board Board { get; }
    /// <summary>The QEMU side (image, launch options, process) for QEMU boards; null for real boards.</summary>
    public QemuBoardSession? Qemu { get; }
    public bool IsQemu => Qemu is not null;
    /// <summary>Where this session's whole console and secure-console logs are written.</summary>
    public string LogDirectory { get; }
    /// <summary>Why this session was booted ("first use", or what was wrong with the previous one).</summary>
    public string BootReason { get; }
    /// <summary>Power-on (QEMU start) to a set-up console shell.</summary>
    public TimeSpan BootDuration { get; internal set; }
    public BoardFacts Facts { get; internal set; } = null!;

    /// <summary>Cancelled the moment the board is lost (QEMU exited): pass it on so a waiting command ends at once.</summary>
    public CancellationToken Lost => _lost.Token;
    public string? LostReason => _lostReason;

    /// <summary>Why this session must not run another test; null while it is healthy.</summary>
    public string? Unhealthy()
    {
        if (_lostReason is { } lost) return lost;
        if (Board.BrokenReason is { } broken) return $"board session broken: {broken}";
        if (Qemu?.Power.Instance is { IsAlive: false } dead) return $"QEMU pid {dead.ProcessId} is not running";
        return _condemned;
    }

    /// <summary>
    /// Follows the board's power: a power process that ends on its own (QEMU crashed, was killed,
    /// refused to start) marks the session lost and cancels <see cref="Lost"/> the moment it happens,
    /// with the exit code and the process's last error lines in the reason.
    /// </summary>
    internal void WatchPower() => Board.PowerLost += loss =>
    {
        if (!_closing) MarkLost($"power lost: {loss}");
    };

    /// <summary>When the loss was noticed (UTC); null while the session is not lost.</summary>
    public DateTimeOffset? LostAtUtc { get; private set; }

    internal void MarkLost(string reason)
    {
        if (_lostReason is null) LostAtUtc = DateTimeOffset.UtcNow;
        _lostReason ??= reason;
        try { _lost.Cancel(); }
        catch (ObjectDisposedException) { }
    }

    /// <summary>Keeps the session from running another test (an infrastructure failure left it in an unknown state).</summary>
    internal void Condemn(string reason) => _condemned ??= reason;

    /// <summary>
    /// Fault injection: cuts the board's power with no shutdown — SIGKILL for QEMU (what a crashed or
    /// unplugged board looks like), power off for a real board whose power the harness switches.
    /// Detection is left to the normal path (QEMU's exit), except on real boards where nothing else
    /// would tell.
    /// </summary>
    public async Task CutPowerAsync()
    {
        if (Qemu is { } q)
        {
            await q.Power.KillAsync().ConfigureAwait(false);
            return;
        }
        if (!Board.Power.CanSwitch)
            throw new TestErrorException($"board {Target.Name}: power.driver '{Board.Power.Name}' cannot switch power, so power loss cannot be injected ({Target.BoardFile})");
        await Board.Power.OffAsync(CancellationToken.None).ConfigureAwait(false);
        MarkLost($"power switched off by fault injection ({Board.Power.Name})");
    }

    /// <summary>Kills QEMU at once (process exit without awaiting logs); for the runner's exit hook only.</summary>
    internal void KillNow()
    {
        _closing = true;
        try { Qemu?.Power.Instance?.KillAsync().Wait(TimeSpan.FromSeconds(3)); }
        catch (AggregateException) { }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _closing = true;
        try
        {
            if (Qemu is { } q)
            {
                // Disposing the QEMU session closes the links and stops QEMU, whatever happens.
                await q.DisposeAsync().ConfigureAwait(false);
                KeepQemuFiles(q);
            }
            else
            {
                await Board.DisposeAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            _lost.Dispose();
        }
    }

    /// <summary>QEMU's command line and error output go with the session's logs; its temp run folder goes away.</summary>
    private void KeepQemuFiles(QemuBoardSession q)
    {
        var run = q.Launch.RunDirectory;
        foreach (var name in new[] { "qemu.cmdline", "qemu-stderr.log" })
        {
            var from = Path.Combine(run, name);
            if (File.Exists(from)) File.Copy(from, Path.Combine(LogDirectory, name), overwrite: true);
        }
        // Only folders QemuLaunchOptions made for us under the temp folder are removed.
        if (Path.GetFileName(run).StartsWith("hil-", StringComparison.Ordinal) &&
            Path.GetDirectoryName(Path.GetFullPath(run)) == Path.GetFullPath(Path.GetTempPath()).TrimEnd('/'))
        {
            try { Directory.Delete(run, recursive: true); }
            catch (IOException) { }
        }
    }
}
