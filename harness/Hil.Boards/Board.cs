using Hil.Boards.BoardFiles;
using Hil.Boards.Boot;
using Hil.Boards.Console;
using Hil.Boards.Failures;
using Hil.Boards.Links;
using Hil.Boards.Power;
using Hil.Boards.Shell;
using Hil.Boards.Ssh;
using Hil.Boards.Watch;
using Serilog;

namespace Hil.Boards;

/// <summary>How to open a board session.</summary>
public sealed record BoardOptions
{
    /// <summary>Where console logs go (NAME.raw / NAME.log per console).</summary>
    public required string LogDirectory { get; init; }

    public ILogger Logger { get; init; } = Serilog.Log.Logger;
    public ShellOptions? Shell { get; init; }

    /// <summary>A power driver made by the caller (e.g. the QEMU board's), instead of the board file's.</summary>
    public IPowerDriver? Power { get; init; }
}

/// <summary>
/// One board in use: its links (console, secure console, SSH), the console shell, power, boot stages,
/// console logs and watcher, and whether the session is broken. Suites use it as
/// <c>await board.EnsureShellAsync(); await board.Shell.RunAsync(cmd, timeout); await board.Ssh.RunAsync(...)</c>.
/// </summary>
public sealed class Board : IAsyncDisposable
{
    private readonly ConsoleLink? _console;
    private readonly ConsoleShell? _shell;
    private readonly SshLink? _ssh;
    private readonly ILogger _log;
    private readonly List<ConsoleLog> _logs = [];
    private int _checkedEvents;
    private volatile PowerLoss? _powerLoss;
    private CancellationTokenSource _powerGone = new();

    private Board(BoardSpec spec, BoardOptions options, ConsoleLink? console, ConsoleLink? secure, SshLink? ssh, IPowerDriver power,
        ConsoleWatcher watcher, ILogger log)
    {
        Spec = spec;
        _console = console;
        SecureConsole = secure;
        _ssh = ssh;
        Power = power;
        Watcher = watcher;
        _log = log;
        if (console is not null)
        {
            _shell = new ConsoleShell(console, spec.Login, spec.Shell, log, options.Shell);
            _shell.Broken += reason => BrokenReason ??= reason;
            _shell.AfterCommand = ThrowOnFatalEvents;
            Boot = new BootSequencer(spec, console, power, log);
        }
        if (power is IPowerLossSource source) source.PowerLost += OnPowerLost;
    }

    /// <summary>
    /// Raised the moment the board loses power on its own (its power process ended): whoever runs a
    /// test on the board ends it at once, as infrastructure, instead of waiting for a timeout.
    /// </summary>
    public event Action<PowerLoss>? PowerLost;

    /// <summary>The last power loss since the last boot began; null while the power is fine.</summary>
    public PowerLoss? LastPowerLoss => _powerLoss;

    private void OnPowerLost(PowerLoss loss)
    {
        _powerLoss = loss;
        _log.Error("board {Board}: power lost: {Loss}", Spec.Name, loss.ToString());
        try { _powerGone.Cancel(); }
        catch (ObjectDisposedException) { }
        PowerLost?.Invoke(loss);
    }

    /// <summary>Opens the board's links (consoles start logging at once; SSH connects lazily).</summary>
    public static async Task<Board> OpenAsync(BoardSpec spec, BoardOptions options, CancellationToken ct = default)
    {
        var log = options.Logger.ForContext("Board", spec.Name);
        var watcher = new ConsoleWatcher();
        var power = options.Power ?? PowerDrivers.Create(new PowerContext(spec, spec.Power, log));
        var logs = new List<ConsoleLog>();
        ConsoleLink? Link(ConsoleSpec? cs, string name)
        {
            if (cs is null) return null;
            var clog = new ConsoleLog(options.LogDirectory, name);
            logs.Add(clog);
            watcher.Attach(clog, name);
            return new ConsoleLink(ConsoleLink.EndpointFor(cs), clog, log, ConsoleLink.OptionsFor(cs));
        }
        var console = Link(spec.Console, "console");
        var secure = Link(spec.SecureConsole, "secure-console");
        var ssh = spec.Ssh is null ? null : new SshLink(spec.Ssh, log);
        var board = new Board(spec, options, console, secure, ssh, power, watcher, log);
        board._logs.AddRange(logs);
        // The pumps start now so that every byte is logged, whether or not the device is there yet.
        if (console is not null) _ = console.OpenAsync(ct).ContinueWith(_ => { }, TaskScheduler.Default);
        if (secure is not null) _ = secure.OpenAsync(ct).ContinueWith(_ => { }, TaskScheduler.Default);
        await Task.CompletedTask.ConfigureAwait(false);
        return board;
    }

    public BoardSpec Spec { get; }
    public IPowerDriver Power { get; }
    public ConsoleWatcher Watcher { get; }
    public BootSequencer? Boot { get; }
    public ConsoleLink? SecureConsole { get; }

    public ConsoleLink Console => _console ?? throw new TestErrorException($"board {Spec.Name} has no console in {Spec.SourceFile}");
    public ConsoleShell Shell => _shell ?? throw new TestErrorException($"board {Spec.Name} has no console in {Spec.SourceFile}, so no console shell");
    public SshLink Ssh => _ssh ?? throw new TestErrorException($"board {Spec.Name} has no ssh section in {Spec.SourceFile}");

    public bool HasConsole => _console is not null;
    public bool HasSsh => _ssh is not null;

    /// <summary>Why the session is unusable; null while it is fine. A broken session fails every call as infrastructure.</summary>
    public string? BrokenReason { get; private set; }
    public bool IsBroken => BrokenReason is not null;

    /// <summary>
    /// Makes sure there is a logged-in, set-up console shell: uses the one there is, logs in if a
    /// login or shell prompt answers, else boots the board (power cycle + stages) when power can be
    /// switched. Failing that, the session is marked broken (infrastructure).
    /// </summary>
    public async Task EnsureShellAsync(CancellationToken ct = default)
    {
        ThrowIfBroken();
        var shell = Shell;
        if (shell.IsReady) return;
        // A console that only exists while the board is powered (a USB adapter on the board, QEMU's
        // socket) cannot be waited for: if it is absent and power can be switched, boot right away.
        if (!Console.IsConnected && Power.CanSwitch)
        {
            _ = Console.OpenAsync(ct).ContinueWith(_ => { }, TaskScheduler.Default);
            await Task.Delay(300, ct).ConfigureAwait(false);
            if (!Console.IsConnected)
            {
                _log.Information("console {Console} is absent; powering the board up", Console.Address);
                await BootAsync(ct).ConfigureAwait(false);
                return;
            }
        }
        try
        {
            await Console.OpenAsync(ct).ConfigureAwait(false);
            var first = Power.CanSwitch ? TimeSpan.FromTicks(Math.Min(Spec.Login.Timeout.Ticks, TimeSpan.FromSeconds(10).Ticks)) : Spec.Login.Timeout;
            await shell.LoginAsync(first, ct).ConfigureAwait(false);
        }
        catch (InfrastructureException) when (Power.CanSwitch)
        {
            _log.Information("no shell answers on {Console}; booting the board", Console.Address);
            await BootAsync(ct).ConfigureAwait(false);
            return;
        }
        catch (InfrastructureException ex)
        {
            throw MarkBroken($"no shell on the console: {ex.Message}", ex);
        }
        Watcher.ArmResetDetection();
        Boot?.ShellReached();
    }

    /// <summary>Power-cycles the board and brings it up to a shell through the board file's boot stages.</summary>
    public async Task BootAsync(CancellationToken ct = default)
    {
        ThrowIfBroken();
        Watcher.DisarmResetDetection();
        // A power process that dies during the boot (QEMU refusing an option, a crash) ends the
        // boot at once with its exit code and error output, not after the stage's timeout.
        _powerLoss = null;
        var gone = new CancellationTokenSource();
        Interlocked.Exchange(ref _powerGone, gone).Dispose();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, gone.Token);
        try
        {
            await Boot!.BootAsync(linked.Token).ConfigureAwait(false);
            await Shell.LoginAsync(Spec.Boot.LoginTimeout, linked.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (_powerLoss is { } loss && ex is OperationCanceledException or InfrastructureException)
        {
            throw MarkBroken($"power lost while {Boot!.Waiting}: {loss}", ex);
        }
        catch (InfrastructureException ex)
        {
            throw MarkBroken($"boot failed while {Boot!.Waiting}: {ex.Message}", ex);
        }
        catch (ProductFailureException ex)
        {
            // The board did not boot: that is its failure (kept as such), and the session is unusable.
            _ = MarkBroken($"boot failed: {ex.Message}", ex);
            throw;
        }
        Boot.ShellReached();
        _checkedEvents = Watcher.Count; // banners and messages of a deliberate boot are not a test's failure
        Watcher.ArmResetDetection();
    }

    /// <summary>Starts a test: its console events and log slice are collected until <see cref="TestScope.Complete"/>.</summary>
    public TestScope BeginTest(string name) => new(this, name);

    /// <summary>Marks the session unusable; the failure is infrastructure.</summary>
    public BoardBrokenException MarkBroken(string reason, Exception? inner = null)
    {
        BrokenReason ??= reason;
        _shell?.MarkBrokenBy(reason);
        _log.Error("board {Board} session broken: {Reason}", Spec.Name, reason);
        return new BoardBrokenException($"board {Spec.Name}: {reason}", inner);
    }

    private void ThrowIfBroken()
    {
        if (BrokenReason is { } r) throw new BoardBrokenException($"board {Spec.Name} session is broken: {r}");
    }

    /// <summary>A panic, Oops, OP-TEE panic or unexpected reset since the last check fails the current command.</summary>
    private Task ThrowOnFatalEvents(ShellResult result)
    {
        // Lines the command printed itself are not the board's doing; kernel lines removed from its output are.
        Watcher.Forget(e => e.Source == "console" && IsCommandOutput(e.Line, result), _checkedEvents);
        var events = Watcher.Since(_checkedEvents);
        _checkedEvents += events.Count;
        var fatal = events.Where(ConsoleWatcher.IsFatal).ToList();
        if (fatal.Count > 0)
            throw new ConsoleEventException($"board {Spec.Name}: {fatal[0]}", fatal.SelectMany(e => e.Context.Append($"=> {e}")).ToList());
        return Task.CompletedTask;
    }

    private static bool IsCommandOutput(string line, ShellResult result)
    {
        if (result.KernelLines.Any(k => line.Contains(k.TrimEnd('\r'), StringComparison.Ordinal))) return false;
        // A console line may carry frame markers (0x1E ... 0x1E) before or after output text.
        var parts = System.Text.RegularExpressions.Regex.Split(line, "\x1e[^\x1e]*\x1e").Select(p => p.TrimEnd('\r')).Where(p => p.Length > 0).ToList();
        return parts.Count > 0 && parts.All(p => result.Output.Contains(p, StringComparison.Ordinal));
    }

    internal long ConsolePosition => _console?.Log.Position ?? 0;

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        if (Power is IPowerLossSource source) source.PowerLost -= OnPowerLost;
        if (_ssh is not null) await _ssh.DisposeAsync().ConfigureAwait(false);
        if (_console is not null) await _console.DisposeAsync().ConfigureAwait(false);
        if (SecureConsole is not null) await SecureConsole.DisposeAsync().ConfigureAwait(false);
        foreach (var l in _logs) l.Dispose();
    }
}

/// <summary>
/// One test on a board: remembers where the console log and the watcher stood when it began, so the
/// test gets its own console slice and fails with the evidence of anything the console showed.
/// </summary>
public sealed class TestScope
{
    private readonly Board _board;
    private readonly int _eventMark;
    private readonly long _consoleStart;

    internal TestScope(Board board, string name)
    {
        _board = board;
        Name = name;
        _eventMark = board.Watcher.Count;
        _consoleStart = board.ConsolePosition;
    }

    public string Name { get; }

    /// <summary>Console events (panics, warnings, resets) seen since the test began.</summary>
    public IReadOnlyList<ConsoleEvent> Events => _board.Watcher.Since(_eventMark);

    /// <summary>The raw console bytes received during the test.</summary>
    public byte[] ConsoleSlice() => _board.HasConsole ? _board.Console.Log.ReadRaw(_consoleStart, _board.ConsolePosition) : [];

    /// <summary>Ends the test: throws a product failure carrying the evidence if the console showed anything.</summary>
    public void Complete()
    {
        var events = Events;
        if (events.Count == 0) return;
        throw new ConsoleEventException($"test {Name}: {events[0]}{(events.Count > 1 ? $" (+{events.Count - 1} more)" : "")}",
            events.SelectMany(e => e.Context.Append($"=> {e}")).ToList());
    }
}
