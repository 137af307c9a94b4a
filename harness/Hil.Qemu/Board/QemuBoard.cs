using Hil.Boards.BoardFiles;
using Hil.Boards.Failures;
using Hil.Boards.Power;
using Hil.Kernel;
using Hil.Qemu.Launch;
using Hil.Qemu.Provisioning;
using Serilog;
using BoardSession = Hil.Boards.Board;

namespace Hil.Qemu.Board;

/// <summary>How to open a QEMU board.</summary>
public sealed record QemuBoardOptions
{
    /// <summary>Where the board's console logs go.</summary>
    public required string LogDirectory { get; init; }
    public HilCache Cache { get; init; } = HilCache.Default();
    public ILogger Logger { get; init; } = Serilog.Log.Logger;
    /// <summary>Provision the image when the cache has none (otherwise fail with the command to run).</summary>
    public bool ProvisionIfMissing { get; init; } = true;
    /// <summary>Per-instance folder (console socket, logs); a fresh temp folder when null.</summary>
    public string? RunDirectory { get; init; }
    public Hil.Boards.Shell.ShellOptions? Shell { get; init; }
    /// <summary>Fault injection: changes the launch options of this instance (e.g. a missing NIC ROM).</summary>
    public Func<QemuLaunchOptions, QemuLaunchOptions>? AdjustLaunch { get; init; }
}

/// <summary>
/// Opens QEMU boards through the same board-access layer as real hardware. The board file
/// (power.driver: qemu, power.settings.image: the provisioned image) says everything static; per
/// instance this fixes the console socket, the secure log and a free loopback SSH port, and pins
/// SSH to the image's own host key and root key.
/// </summary>
public static class QemuBoards
{
    /// <summary>power.settings key naming the provisioned image (qemu-optee, qemu-optee-6.1).</summary>
    public const string ImageSetting = "image";

    /// <summary>
    /// Registers the "qemu" power driver so that board files naming it load. Opened through plain
    /// Board.OpenAsync, the driver uses the board file's own console path and SSH port (one instance).
    /// </summary>
    public static void Register(HilCache? cache = null) =>
        PowerDrivers.Register(QemuPowerDriver.DriverName, ctx => FromBoardFile(ctx, cache ?? HilCache.Default()));

    private static QemuPowerDriver FromBoardFile(PowerContext ctx, HilCache cache)
    {
        var image = CurrentImage(ctx.Board, cache, provision: false, ctx.Logger).GetAwaiter().GetResult();
        var console = ctx.Board.Console;
        if (console is not { Kind: ConsoleKind.UnixSocket })
            throw new TestErrorException($"{ctx.Board.SourceFile}: console.device: the qemu driver serves the console on a unix socket; write unix:/path");
        var options = new QemuLaunchOptions
        {
            Image = image,
            RunDirectory = Path.GetDirectoryName(console.Address)!,
            ConsoleSocket = console.Address,
            SecureLog = ctx.Board.SecureConsole is { Kind: ConsoleKind.File } s ? s.Address : null,
            SshPort = ctx.Board.Ssh?.Port ?? FreePort.Next(),
        };
        return new QemuPowerDriver(options, ctx.Logger);
    }

    /// <summary>Opens a board session for a QEMU board file with its own QEMU instance (not yet powered on).</summary>
    public static async Task<QemuBoardSession> OpenAsync(string boardFile, QemuBoardOptions options, CancellationToken ct = default)
    {
        Register(options.Cache);
        var spec = BoardFileLoader.Load(boardFile);
        if (spec.Power.Driver != QemuPowerDriver.DriverName)
            throw new TestErrorException($"{spec.SourceFile}: power.driver: expected '{QemuPowerDriver.DriverName}' for a QEMU board, got '{spec.Power.Driver}'");
        if (spec.Console is null || spec.Ssh is null)
            throw new TestErrorException($"{spec.SourceFile}: a QEMU board file needs console and ssh sections");
        // The board file's facts are not checked against the recipe here: suites measure policy and
        // thread count on the booted board and fail a board file that expects otherwise, naming both.
        var image = await CurrentImage(spec, options.Cache, options.ProvisionIfMissing, options.Logger).ConfigureAwait(false);

        var launch = QemuLaunchOptions.For(image, options.RunDirectory);
        if (options.AdjustLaunch is { } adjust) launch = adjust(launch);
        var instanceSpec = spec with
        {
            Console = spec.Console with { Kind = ConsoleKind.UnixSocket, Address = launch.ConsoleSocketPath },
            SecureConsole = (spec.SecureConsole ?? spec.Console) with { Kind = ConsoleKind.File, Address = launch.SecureLogPath },
            Ssh = spec.Ssh with
            {
                Host = "127.0.0.1",
                Port = launch.SshPort,
                KeyFile = image.Ssh.PrivateKeyPath,
                // Pinned: only the key generated for this image is accepted.
                HostKeys = [image.Ssh.HostKeyFingerprint],
                KnownHosts = null,
                AcceptNewHostKey = false,
            },
        };
        var power = new QemuPowerDriver(launch, options.Logger.ForContext("Board", spec.Name));
        var board = await BoardSession.OpenAsync(instanceSpec, new Hil.Boards.BoardOptions
        {
            LogDirectory = options.LogDirectory,
            Logger = options.Logger,
            Power = power,
            Shell = options.Shell,
        }, ct).ConfigureAwait(false);
        return new QemuBoardSession(board, power, image, launch);
    }

    private static async Task<ProvisionedImage> CurrentImage(BoardSpec spec, HilCache cache, bool provision, ILogger log)
    {
        if (!spec.Power.Settings.TryGetValue(ImageSetting, out var name))
            throw new TestErrorException($"{spec.SourceFile}: power.settings.{ImageSetting}: missing; name the provisioned image ({string.Join(", ", BoardRecipe.All.Select(r => r.Board))})");
        var recipe = BoardRecipe.All.FirstOrDefault(r => r.Board == name)
            ?? throw new TestErrorException($"{spec.SourceFile}: power.settings.{ImageSetting}: unknown image '{name}'; known: {string.Join(", ", BoardRecipe.All.Select(r => r.Board))}");
        if (QemuProvisioner.Current(cache, recipe) is { } image) return image;
        if (!provision)
            throw new InfrastructureException($"{spec.SourceFile}: image {name} is not provisioned in {cache.Root}; run: hil provision --board {name}");
        var result = await new QemuProvisioner(cache, new ProvisionOptions(), log, new LogProvisionProgress(log))
            .ProvisionAsync([recipe], CancellationToken.None).ConfigureAwait(false);
        return result.Images[0];
    }
}

/// <summary>What the board reported about its OP-TEE thread count against what its board file states.</summary>
public sealed record ThreadCountCheck(int? Expected, int? Observed, string Raw)
{
    /// <summary>True when both are known and differ: the harness's facts are wrong for this board.</summary>
    public bool Mismatch => Expected is not null && Observed is not null && Expected != Observed;
    /// <summary>Legacy kernels (before 6.8) do not count threads, so there is nothing to observe.</summary>
    public bool Observable => Observed is not null;

    public override string ToString() => Observed is null
        ? $"OP-TEE thread count not observable on this kernel (board file says {Expected?.ToString() ?? "nothing"})"
        : Mismatch ? $"OP-TEE thread count MISMATCH: board reports {Observed}, board file says {Expected}"
                   : $"OP-TEE thread count {Observed} (as the board file says)";
}

/// <summary>A QEMU board in use: the board session, its power (the QEMU process) and its image.</summary>
public sealed class QemuBoardSession(BoardSession board, QemuPowerDriver power, ProvisionedImage image, QemuLaunchOptions launch) : IAsyncDisposable
{
    public BoardSession Board { get; } = board;
    public QemuPowerDriver Power { get; } = power;
    public ProvisionedImage Image { get; } = image;
    public QemuLaunchOptions Launch { get; } = launch;

    /// <summary>
    /// Reads the thread count /init captured with its kprobe on optee_cq_init (before optee.ko
    /// loaded) and compares it with the board file's facts.optee_threads.
    /// </summary>
    public async Task<ThreadCountCheck> CheckThreadCountAsync(CancellationToken ct = default)
    {
        var r = await Board.Shell.RunCheckedAsync("cat /run/hil/optee_thread_count", TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
        var raw = r.Output.Trim();
        int? observed = int.TryParse(raw, out var n) ? n : null;
        if (observed is null && raw != "unavailable")
            throw new ProductFailureException($"unexpected thread-count record on {Image.Board}: '{raw}'");
        return new ThreadCountCheck(Board.Spec.OpteeThreads, observed, raw);
    }

    public async ValueTask DisposeAsync()
    {
        // QEMU must never outlive the session, whatever closing the links throws.
        try { await Board.DisposeAsync().ConfigureAwait(false); }
        finally
        {
            await Power.OffAsync(CancellationToken.None).ConfigureAwait(false);
            if (Power.Instance is { } i) await i.DisposeAsync().ConfigureAwait(false);
        }
    }
}
