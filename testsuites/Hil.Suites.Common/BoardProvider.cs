using System.Diagnostics;
using System.Text.Json;
using Hil.Boards;
using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Boards.Watch;
using Hil.Qemu.Board;
using Serilog;

namespace Hil.Suites.Common;

/// <summary>One boot of a board as the run saw it (written to RESULTS/BOARD/SUITE/sessions.json).</summary>
public sealed record SessionRecord(int Session, string Reason, DateTimeOffset StartedUtc, double? BootSeconds, string? Failure,
    string? EndedBecause, string LogDirectory);

/// <summary>
/// Hands tests a ready board: provisions or reuses the QEMU image, boots the board once, and keeps
/// that session while it is healthy. Before every test it checks the session: lost (QEMU exited),
/// broken (the shell could not be recovered) or condemned (the last test failed for infrastructure
/// reasons) → the session is closed and a fresh one booted. A boot that fails as a product failure
/// (the console talks but the board does not come up) is not tried again in this run: every later
/// test fails at once with that failure instead of spending a boot timeout each.
/// </summary>
public sealed class BoardProvider : IAsyncDisposable
{
    /// <summary>Power-on to shell, provisioning excluded; the board file's stage timeouts are the real limits.</summary>
    private static readonly TimeSpan BootBudget = TimeSpan.FromMinutes(5);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Serilog.Core.Logger _log;
    private readonly List<SessionRecord> _sessions = [];
    private readonly List<ConsoleEvent> _closedEvents = [];
    private LiveBoard? _current;
    private Failure? _bootLatch;
    private int _count;

    internal BoardProvider(BoardTarget target, string suite)
    {
        Target = target;
        Suite = suite;
        BoardDirectory = SuiteResults.ForBoard(target.Name);
        SuiteDirectory = SuiteResults.ForSuite(target.Name, suite);
        Directory.CreateDirectory(SuiteDirectory);
        _log = new LoggerConfiguration().MinimumLevel.Information()
            .Enrich.WithProperty("Suite", suite)
            .WriteTo.File(Path.Combine(SuiteDirectory, "harness.log"),
                outputTemplate: "{Timestamp:HH:mm:ss.fff} {Level:u3} {Message:lj}{NewLine}{Exception}", shared: true)
            .CreateLogger();
    }

    public BoardTarget Target { get; }
    public string Suite { get; }
    /// <summary>RESULTS/BOARD: facts, manifest, provisioning record.</summary>
    public string BoardDirectory { get; }
    /// <summary>RESULTS/BOARD/SUITE: harness log, sessions, per-test slices.</summary>
    public string SuiteDirectory { get; }
    /// <summary>The board layer's log for this board and suite.</summary>
    public ILogger Log => _log;
    /// <summary>The session tests currently run on (null before the first test or after a failed boot).</summary>
    public LiveBoard? Current => _current;

    public IReadOnlyList<SessionRecord> Sessions
    {
        get { lock (_sessions) return _sessions.ToList(); }
    }

    /// <summary>Every panic, Oops, OP-TEE abort, warning or reset the consoles showed, over all sessions of this run.</summary>
    public IReadOnlyList<ConsoleEvent> ConsoleEvents
    {
        get
        {
            lock (_closedEvents)
                return _closedEvents.Concat(_current?.Board.Watcher.Since(0) ?? []).ToList();
        }
    }

    /// <summary>A healthy, booted board with a ready console shell; boots a fresh one when the current one is unusable.</summary>
    public async Task<LiveBoard> ReadyAsync(CancellationToken ct)
    {
        if (!Target.IsValid) throw new TestErrorException(Target.SelectionError!);
        SuiteLeases.ThrowIfLost(Target.Name);
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_bootLatch is { } latched)
                throw new HilException(latched.Class, $"board {Target.Name} failed to boot earlier in this run (not tried again): {latched.Message}", evidence: latched.Evidence);
            if (_current is not { } live) return await BootAsync("first use", ct).ConfigureAwait(false);
            var why = live.Unhealthy();
            if (why is null && live.Board.HasConsole && !live.Board.Shell.IsReady)
            {
                try
                {
                    await live.Board.EnsureShellAsync(ct).ConfigureAwait(false);
                }
                catch (InfrastructureException ex)
                {
                    why = $"no console shell: {ex.Message}";
                }
            }
            if (why is null) return live;
            Progress($"session {live.Session} is unusable ({why}): booting a fresh board");
            await CloseCurrentAsync($"unusable: {why}").ConfigureAwait(false);
            return await BootAsync($"session {live.Session} was unusable: {why}", ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Keeps <paramref name="live"/> from running another test; the next <see cref="ReadyAsync"/> boots afresh.</summary>
    public void Condemn(LiveBoard live, string reason)
    {
        _log.Warning("session {Session} condemned: {Reason}", live.Session, reason);
        live.Condemn(reason);
    }

    private async Task<LiveBoard> BootAsync(string reason, CancellationToken ct)
    {
        var n = ++_count;
        var dir = Path.Combine(SuiteDirectory, $"session-{n}");
        Directory.CreateDirectory(dir);
        var started = DateTimeOffset.UtcNow;
        LiveBoard? live = null;
        var budgetExpired = false;
        try
        {
            var spec = BoardFileLoader.Load(Target.BoardFile);
            // A real board is used only under a lease (this run's, or the parent hil run's); a private QEMU board needs none.
            await SuiteLeases.EnsureAsync(spec, this, _log, ct).ConfigureAwait(false);
            var promised = SuiteFacts.FromBoardFile(spec);
            QemuBoardSession? qemu = null;
            Board board;
            if (spec.Power.Driver == QemuPowerDriver.DriverName)
            {
                var (image, record) = await ImageProvisioning.EnsureAsync(spec, _log, ct).ConfigureAwait(false);
                ImageProvisioning.Record(BoardDirectory, image, record);
                if (n == 1) Progress($"image {record.Image}: provisioning {(record.Cold ? "cold" : "warm")} {record.Seconds:0.0} s (cache {record.Cache})");
                qemu = await QemuBoards.OpenAsync(Target.BoardFile, new QemuBoardOptions
                {
                    LogDirectory = dir, Cache = ImageProvisioning.Cache, Logger = _log, ProvisionIfMissing = false,
                }, ct).ConfigureAwait(false);
                board = qemu.Board;
            }
            else
            {
                board = await Board.OpenAsync(spec, new BoardOptions { LogDirectory = dir, Logger = _log }, ct).ConfigureAwait(false);
            }
            live = new LiveBoard(Target, n, board, qemu, dir, reason);
            live.WatchPower();
            _log.Information("session {Session}: booting {Board} ({Reason})", n, Target.Name, reason);
            var clock = Stopwatch.StartNew();
            using (var budget = CancellationTokenSource.CreateLinkedTokenSource(ct, live.Lost))
            {
                budget.CancelAfter(BootBudget);
                try
                {
                    await BringUpAsync(board, qemu is not null, budget.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (budget.IsCancellationRequested && !ct.IsCancellationRequested && live.LostReason is null)
                {
                    budgetExpired = true;
                    throw;
                }
            }
            live.BootDuration = clock.Elapsed;
            live.Facts = await FactsReader.ReadAsync(live, promised, _log, ct).ConfigureAwait(false);
            live.Facts.WriteTo(BoardDirectory);
            AddSession(new SessionRecord(n, reason, started, Math.Round(live.BootDuration.TotalSeconds, 2), null, null, dir));
            Progress($"session {n} up: power-on to shell in {live.BootDuration.TotalSeconds:0.0} s; {live.Facts.Summary}");
            _current = live;
            return live;
        }
        catch (Exception ex)
        {
            var failure = BoardTestRunner.Classify(ex, live, budgetExpired, BootBudget);
            _log.Error("session {Session}: boot failed: {Failure}", n, FailureText.Format(failure));
            if (live is not null)
            {
                lock (_closedEvents) _closedEvents.AddRange(live.Board.Watcher.Since(0));
                await live.DisposeAsync().ConfigureAwait(false);
            }
            AddSession(new SessionRecord(n, reason, started, null, FailureText.Format(failure), "boot failed", dir));
            if (failure.Class == FailureClass.Product) _bootLatch = failure;
            // The class travels with the exception, so the test that asked for the board fails with it.
            throw new HilException(failure.Class, $"board {Target.Name}: boot of session {n} failed: {failure.Message}", ex, failure.Evidence);
        }
    }

    /// <summary>
    /// Boots through the board file's stages to a console shell (power cycle first when the harness
    /// switches the power); a board whose power it cannot switch is used as it is found; a board
    /// without a console is power-cycled if possible and then waited for over SSH.
    /// </summary>
    private static async Task BringUpAsync(Board board, bool isQemu, CancellationToken ct)
    {
        if (!board.HasConsole)
        {
            if (board.Power.CanSwitch) await board.Power.CycleAsync(ct).ConfigureAwait(false);
            await board.Ssh.WaitUntilReachableAsync(ct).ConfigureAwait(false);
            return;
        }
        if (isQemu || board.Power.CanSwitch) await board.BootAsync(ct).ConfigureAwait(false);
        else await board.EnsureShellAsync(ct).ConfigureAwait(false);
    }

    private async Task CloseCurrentAsync(string because)
    {
        if (_current is not { } live) return;
        _current = null;
        lock (_closedEvents) _closedEvents.AddRange(live.Board.Watcher.Since(0));
        lock (_sessions)
        {
            var i = _sessions.FindLastIndex(s => s.Session == live.Session);
            if (i >= 0) _sessions[i] = _sessions[i] with { EndedBecause = because };
        }
        WriteSessions();
        _log.Information("session {Session}: closing ({Because})", live.Session, because);
        await live.DisposeAsync().ConfigureAwait(false);
    }

    private void AddSession(SessionRecord record)
    {
        lock (_sessions) _sessions.Add(record);
        WriteSessions();
    }

    private void WriteSessions()
    {
        List<SessionRecord> copy;
        lock (_sessions) copy = _sessions.ToList();
        File.WriteAllText(Path.Combine(SuiteDirectory, "sessions.json"),
            JsonSerializer.Serialize(copy, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }) + "\n");
    }

    /// <summary>Board events go to the run's progress output (shown live by dotnet test) as well as the log.</summary>
    private void Progress(string message)
    {
        _log.Information("{Message}", message);
        TestContext.Progress.WriteLine($"[{Target.Name}] {message}");
    }

    /// <summary>Stops QEMU at once; only for the process-exit hook, when awaiting is no longer possible.</summary>
    internal void KillNow() => _current?.KillNow();

    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            await CloseCurrentAsync("end of the suite").ConfigureAwait(false);
            await SuiteLeases.ClosedAsync(this).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
            await _log.DisposeAsync().ConfigureAwait(false);
        }
    }
}
