using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Hil.Kernel;
using Hil.Qemu.Provisioning;

namespace Hil.Qemu.Launch;

/// <summary>QEMU could not be started, or died while starting; carries its error output (the message has its last lines, on one line).</summary>
public sealed class QemuLaunchException(string message, string stderr = "")
    : Exception(message + (Hil.Boards.Power.PowerLoss.Tail(stderr) is { Count: > 0 } tail ? ": " + string.Join(" | ", tail) : ""))
{
    public string Stderr { get; } = stderr;
}

/// <summary>Everything that decides one QEMU board run. Instance-specific parts (folder, port) are fixed here, before power-on.</summary>
public sealed record QemuLaunchOptions
{
    public required ProvisionedImage Image { get; init; }
    /// <summary>Per-instance folder: console socket, console log, secure log. Parallel boards get different ones.</summary>
    public required string RunDirectory { get; init; }
    /// <summary>Loopback port forwarded to the guest's SSH port 22.</summary>
    public required int SshPort { get; init; }
    public string Cpu { get; init; } = "cortex-a57";   // -cpu max is ~2.5x slower (emulated pointer auth)
    public int Cpus { get; init; } = 2;
    public int MemoryMiB { get; init; } = 2048;
    public string QemuBinary { get; init; } = "qemu-system-aarch64";
    /// <summary>
    /// The NIC's option ROM: none (the PXE ROM is in ipxe-qemu, a Recommends a fresh machine lacks,
    /// and U-Boot boots from -kernel anyway). Fault injection sets a missing file: QEMU then exits
    /// at start, exactly as it did on a machine without that package.
    /// </summary>
    public string NicRomFile { get; init; } = "";
    /// <summary>
    /// Hold the guest until a client connects to the console socket, so the first byte of firmware
    /// output reaches whoever drives the boot (U-Boot's autoboot countdown is short).
    /// </summary>
    public bool WaitForConsoleClient { get; init; } = true;

    /// <summary>Console socket (QEMU is the server); defaults to console.sock in the run folder.</summary>
    public string? ConsoleSocket { get; init; }
    /// <summary>Secure-world log file; defaults to secure.log in the run folder.</summary>
    public string? SecureLog { get; init; }

    public string ConsoleSocketPath => ConsoleSocket ?? Path.Combine(RunDirectory, "console.sock");
    /// <summary>QEMU's own copy of everything on the console, written even when no client is attached.</summary>
    public string ConsoleLogPath => Path.Combine(RunDirectory, "console.log");
    /// <summary>OP-TEE's secure-world UART (the second serial port).</summary>
    public string SecureLogPath => SecureLog ?? Path.Combine(RunDirectory, "secure.log");
    public string StderrPath => Path.Combine(RunDirectory, "qemu-stderr.log");

    /// <summary>A fresh run folder under the temp folder and a free loopback port.</summary>
    public static QemuLaunchOptions For(ProvisionedImage image, string? runDirectory = null) => new()
    {
        Image = image,
        RunDirectory = runDirectory ?? NewRunDirectory(image.Board),
        SshPort = FreePort.Next(),
    };

    /// <summary>Unix socket paths are limited to 107 bytes, so run folders live under the (short) temp folder.</summary>
    public static string NewRunDirectory(string board)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"hil-{board}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>The complete argument vector (QEMU runs in the image folder, where BL1 finds bl2.bin… by semihosting).</summary>
    public IReadOnlyList<string> Arguments()
    {
        if (Encoding.UTF8.GetByteCount(ConsoleSocketPath) > 107)
            throw new QemuLaunchException($"run folder {RunDirectory} is too long for a unix socket path (limit 107 bytes)");
        var wait = WaitForConsoleClient ? "on" : "off";
        return
        [
            "-machine", "virt,secure=on,gic-version=3,virtualization=false",
            "-cpu", Cpu, "-smp", Cpus.ToString(), "-m", MemoryMiB.ToString(),
            "-semihosting-config", "enable=on,target=native",
            "-bios", Image.Bios,
            "-kernel", Image.KernelImage,
            "-initrd", Image.Initrd,
            "-append", Image.KernelCommandLine,
            "-chardev", $"socket,id=console,path={ChardevPath(ConsoleSocketPath)},server=on,wait={wait},logfile={ChardevPath(ConsoleLogPath)},logappend=off",
            "-serial", "chardev:console",
            "-chardev", $"file,id=secure,path={ChardevPath(SecureLogPath)}",
            "-serial", "chardev:secure",
            "-netdev", $"user,id=net0,hostfwd=tcp:127.0.0.1:{SshPort}-:22",
            "-device", $"virtio-net-pci,netdev=net0,romfile={NicRomFile.Replace(",", ",,")}",
            "-display", "none", "-monitor", "none", "-nodefaults",
            // A guest reboot or poweroff ends the process: power is the process, as on a real board.
            "-no-reboot",
        ];
    }

    /// <summary>QEMU option values are comma-separated: a comma inside a path is written twice.</summary>
    private static string ChardevPath(string p) => p.Replace(",", ",,");
}

/// <summary>Picks free loopback TCP ports; never hands out the same one twice in a process.</summary>
public static class FreePort
{
    private static readonly HashSet<int> Given = [];
    private static readonly Lock Gate = new();

    public static int Next()
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            using var l = new TcpListener(IPAddress.Loopback, 0);
            l.Start();
            var port = ((IPEndPoint)l.LocalEndpoint).Port;
            l.Stop();
            lock (Gate)
                if (Given.Add(port)) return port;
        }
        throw new QemuLaunchException("no free loopback port found");
    }

    public static bool IsFree(int port)
    {
        try
        {
            using var l = new TcpListener(IPAddress.Loopback, port);
            l.Start();
            l.Stop();
            return true;
        }
        catch (SocketException) { return false; }
    }
}

/// <summary>
/// One running QEMU board: the process is the board's power. Exposes where its console and secure
/// log are, the SSH port, and whether it is alive (for hang detection).
/// </summary>
public sealed class QemuInstance : IAsyncDisposable
{
    private readonly Process _process;
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<Task> _pumps = [];
    private volatile bool _stopRequested;

    private QemuInstance(QemuLaunchOptions options, Process process, IReadOnlyList<string> commandLine)
    {
        Options = options;
        _process = process;
        CommandLine = commandLine;
        StartedUtc = DateTime.UtcNow;
    }

    public QemuLaunchOptions Options { get; }
    public IReadOnlyList<string> CommandLine { get; }
    public int ProcessId => _process.Id;
    public DateTime StartedUtc { get; }
    public string ConsoleSocketPath => Options.ConsoleSocketPath;
    public string ConsoleLogPath => Options.ConsoleLogPath;
    public string SecureLogPath => Options.SecureLogPath;
    public int SshPort => Options.SshPort;

    public bool IsAlive => !_exited.Task.IsCompleted;
    /// <summary>When the process was seen to end (UTC); null while it runs.</summary>
    public DateTimeOffset? ExitedAtUtc { get; private set; }
    /// <summary>Completes with QEMU's exit code when the process ends (crash, kill, guest poweroff).</summary>
    public Task<int> Exited => _exited.Task;

    /// <summary>True once <see cref="StopAsync"/> was asked: an exit after it is a power-off, not a power loss.</summary>
    public bool StopRequested => _stopRequested;

    /// <summary>
    /// QEMU's exit code once it has ended and its error output has been read to the end (at most
    /// 500 ms after the exit: a grandchild holding the pipe must not delay the news).
    /// </summary>
    public async Task<int> ExitedWithOutputAsync()
    {
        var code = await Exited.ConfigureAwait(false);
        Task[] pumps;
        lock (_pumps) pumps = [.. _pumps];
        await Task.WhenAny(Task.WhenAll(pumps), Task.Delay(500)).ConfigureAwait(false);
        return code;
    }

    /// <summary>When QEMU last wrote console output (its own log, written with or without a client).</summary>
    public DateTime LastConsoleOutputUtc => File.Exists(ConsoleLogPath) ? File.GetLastWriteTimeUtc(ConsoleLogPath) : StartedUtc;

    /// <summary>QEMU's own error output so far (e.g. why it refused to start).</summary>
    public string Stderr => File.Exists(Options.StderrPath) ? ReadShared(Options.StderrPath) : "";

    /// <summary>The error output without QEMU's "info:" notes (its wait for the console client is not the cause of anything).</summary>
    public string Errors => string.Join('\n', Stderr.Split('\n').Where(l => !l.Contains(": info: ", StringComparison.Ordinal)));

    /// <summary>Starts QEMU and returns once its console socket accepts clients (or fails with QEMU's message).</summary>
    public static async Task<QemuInstance> StartAsync(QemuLaunchOptions options, CancellationToken ct)
    {
        Directory.CreateDirectory(options.RunDirectory);
        Directory.CreateDirectory(Path.GetDirectoryName(options.ConsoleSocketPath)!);
        Directory.CreateDirectory(Path.GetDirectoryName(options.SecureLogPath)!);
        foreach (var stale in new[] { options.ConsoleSocketPath, options.StderrPath })
            if (File.Exists(stale)) File.Delete(stale);
        if (!FreePort.IsFree(options.SshPort))
            throw new QemuLaunchException($"loopback port {options.SshPort} (SSH forward for {options.Image.Board}) is taken by another process");
        var args = options.Arguments();
        var psi = new ProcessStartInfo(options.QemuBinary)
        {
            WorkingDirectory = options.Image.Directory,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // QEMU never needs a board's passwords (and its environment is readable in /proc while it runs).
        Hil.Boards.Secrets.ChildEnvironment.Scrub(psi);
        var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
        try { p.Start(); }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new QemuLaunchException($"cannot start {options.QemuBinary}: {ex.Message} (install qemu-system-arm)");
        }
        var instance = new QemuInstance(options, p, [options.QemuBinary, .. args]);
        instance.Pump(p.StandardError, options.StderrPath);
        instance.Pump(p.StandardOutput, Path.Combine(options.RunDirectory, "qemu-stdout.log"));
        p.Exited += (_, _) => instance.MarkExited(p);
        if (p.HasExited) instance.MarkExited(p);
        await File.WriteAllTextAsync(Path.Combine(options.RunDirectory, "qemu.cmdline"),
            ExternalTool.Describe(options.QemuBinary, args) + "\n", ct);

        // Ready = the console socket exists (QEMU creates it before the guest may run).
        var clock = Stopwatch.StartNew();
        while (!File.Exists(options.ConsoleSocketPath))
        {
            if (!instance.IsAlive)
            {
                var code = await instance.ExitedWithOutputAsync();
                throw new QemuLaunchException($"QEMU for {options.Image.Board} exited with code {code} while starting", instance.Errors.Trim());
            }
            if (clock.Elapsed > TimeSpan.FromSeconds(30))
            {
                await instance.KillAsync();
                throw new QemuLaunchException($"QEMU for {options.Image.Board} did not create its console socket within 30 s", instance.Stderr.Trim());
            }
            await Task.Delay(20, ct);
        }
        return instance;
    }

    private void MarkExited(Process p)
    {
        ExitedAtUtc ??= DateTimeOffset.UtcNow;
        _exited.TrySetResult(SafeExitCode(p));
    }

    private static int SafeExitCode(Process p)
    {
        try { return p.ExitCode; } catch (InvalidOperationException) { return -1; }
    }

    private void Pump(StreamReader from, string path)
    {
        var pump = Task.Run(async () =>
    {
        await using var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite);
        var buf = new char[4096];
        int n;
        while ((n = await from.ReadAsync(buf)) > 0)
        {
            var bytes = Encoding.UTF8.GetBytes(buf, 0, n);
            await f.WriteAsync(bytes);
            await f.FlushAsync();
        }
    });
        lock (_pumps) _pumps.Add(pump);
    }

    private static string ReadShared(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(fs).ReadToEnd();
    }

    /// <summary>Power off: SIGTERM (QEMU shuts down cleanly), then SIGKILL after <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        _stopRequested = true;
        if (!IsAlive) return;
        try { Posix.Terminate(_process.Id); }
        catch (InvalidOperationException) { return; }
        if (await Task.WhenAny(Exited, Task.Delay(grace)) != Exited) await KillAsync();
    }

    /// <summary>Pulls the plug: SIGKILL, no shutdown (what a lost board looks like to the harness).</summary>
    public async Task KillAsync()
    {
        if (!IsAlive) return;
        try { _process.Kill(); } catch (InvalidOperationException) { }
        await Task.WhenAny(Exited, Task.Delay(5000));
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(5));
        _process.Dispose();
    }
}

/// <summary>Sending SIGTERM (Process.Kill always sends SIGKILL); kill(1) avoids native interop.</summary>
internal static class Posix
{
    public static void Terminate(int pid)
    {
        using var p = Process.Start(Hil.Boards.Secrets.ChildEnvironment.Scrub(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", pid.ToString() }, UseShellExecute = false }))
            ?? throw new InvalidOperationException("cannot run kill");
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"kill -TERM {pid} failed");
    }
}
