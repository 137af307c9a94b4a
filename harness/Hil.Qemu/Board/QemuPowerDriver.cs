using Hil.Boards.Failures;
using Hil.Boards.Power;
using Hil.Qemu.Launch;
using Serilog;

namespace Hil.Qemu.Board;

/// <summary>
/// Power for the QEMU board: on = start the QEMU process, off = stop it, cycle = a fresh process
/// (a cold boot, as pulling the plug on a real board). Alive = the process runs; a process that
/// died under a test shows up here and as a lost console link.
/// </summary>
public sealed class QemuPowerDriver(QemuLaunchOptions options, ILogger logger) : IPowerDriver, IPowerLossSource
{
    /// <summary>QEMU ended without being switched off (it refused to start, crashed or was killed).</summary>
    public event Action<PowerLoss>? PowerLost;

    public const string DriverName = "qemu";
    private QemuInstance? _instance;

    public string Name => DriverName;
    public bool CanSwitch => true;
    public QemuLaunchOptions Options => options;

    /// <summary>The running (or last) QEMU process; null before the first power-on.</summary>
    public QemuInstance? Instance => _instance;

    public async Task OnAsync(CancellationToken ct)
    {
        if (_instance is { IsAlive: true }) return;
        if (_instance is not null) await _instance.DisposeAsync().ConfigureAwait(false);
        try
        {
            _instance = await QemuInstance.StartAsync(options, ct).ConfigureAwait(false);
        }
        catch (QemuLaunchException ex)
        {
            throw new InfrastructureException($"power on ({options.Image.Board}): {ex.Message}", ex,
                ex.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        var instance = _instance;
        logger.Information("power on: QEMU pid {Pid}, console {Console}, ssh 127.0.0.1:{Port}, secure log {Secure}",
            instance.ProcessId, options.ConsoleSocketPath, options.SshPort, options.SecureLogPath);
        _ = Task.Run(async () =>
        {
            var code = await instance.ExitedWithOutputAsync().ConfigureAwait(false);
            logger.Information("QEMU pid {Pid} exited with code {Code}", instance.ProcessId, code);
            // A deliberate off, or an old instance a power cycle already replaced, is no loss.
            if (instance.StopRequested || !ReferenceEquals(instance, _instance)) return;
            var loss = new PowerLoss($"QEMU pid {instance.ProcessId}", code, PowerLoss.Tail(instance.Errors), DateTimeOffset.UtcNow);
            logger.Error("power lost: {Loss}", loss.ToString());
            PowerLost?.Invoke(loss);
        });
    }

    public async Task OffAsync(CancellationToken ct)
    {
        if (_instance is null) return;
        logger.Information("power off: stopping QEMU pid {Pid}", _instance.ProcessId);
        await _instance.StopAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
    }

    public async Task CycleAsync(CancellationToken ct)
    {
        await OffAsync(ct).ConfigureAwait(false);
        await OnAsync(ct).ConfigureAwait(false);
    }

    public Task<bool?> IsAliveAsync(CancellationToken ct) => Task.FromResult<bool?>(_instance?.IsAlive ?? false);

    /// <summary>Kills QEMU without shutdown (what a crashed or unplugged board looks like).</summary>
    public Task KillAsync() => _instance?.KillAsync() ?? Task.CompletedTask;
}
