using System.Diagnostics;
using System.Globalization;

namespace Hil.Qemu.Launch;

/// <summary>
/// A QEMU board started as a power outlet would start a real one: detached from whoever switched it
/// on (a PDUDaemon driver runs a command and waits for it to end), found again by its pidfile to
/// be switched off. The command line is <see cref="QemuLaunchOptions.Arguments"/>'s, nothing else.
/// </summary>
public static class DetachedQemu
{
    /// <summary>
    /// Starts QEMU in its own session (it survives the caller), and returns its pid once its TCP
    /// console port listens. Fails in one line when it is already on, a port is taken, or QEMU exits.
    /// </summary>
    public static async Task<int> StartAsync(QemuLaunchOptions options, string pidFile, CancellationToken ct)
    {
        if (options.ConsoleTcpPort is not { } consolePort)
            throw new QemuLaunchException("a detached QEMU serves its console on TCP: give a console port");
        if (Running(pidFile) is { } running)
            throw new QemuLaunchException($"{options.Image.Board} is already on (pid {running}, {pidFile})");
        foreach (var (port, what) in new[] { (consolePort, "console"), (options.SecureTcpPort ?? 0, "secure console"), (options.SshPort, "SSH forward") })
            if (port != 0 && !FreePort.IsFree(port))
                throw new QemuLaunchException($"loopback port {port} ({what} of {options.Image.Board}) is taken by another process");
        Directory.CreateDirectory(options.RunDirectory);
        File.Delete(pidFile);
        var args = options.Arguments();
        var psi = new ProcessStartInfo("setsid")
        {
            WorkingDirectory = options.Image.Directory,
            UseShellExecute = false,
        };
        // setsid -f: QEMU leads its own session, so the outlet command ends while the board stays on.
        // The shell only redirects and execs; every value is a positional argument, never parsed as code.
        foreach (var a in new[] { "-f", "sh", "-c", "out=$0 err=$1; shift; exec \"$@\" </dev/null >\"$out\" 2>\"$err\"",
                     Path.Combine(options.RunDirectory, "qemu-stdout.log"), options.StderrPath, options.QemuBinary, "-pidfile", pidFile })
            psi.ArgumentList.Add(a);
        foreach (var a in args) psi.ArgumentList.Add(a);
        Hil.Boards.Secrets.ChildEnvironment.Scrub(psi);
        using (var launcher = Process.Start(psi) ?? throw new QemuLaunchException("cannot start setsid"))
            await launcher.WaitForExitAsync(ct).ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(options.RunDirectory, "qemu.cmdline"),
            Hil.Kernel.ExternalTool.Describe(options.QemuBinary, args) + "\n", ct).ConfigureAwait(false);

        // Ready = the console port listens (QEMU then waits for ser2net before the guest runs).
        // Probing by connecting would be taken as the console client, so /proc/net/tcp is read instead.
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            ct.ThrowIfCancellationRequested();
            var pid = Running(pidFile);
            if (pid is not null && Listening(consolePort)) return pid.Value;
            if (pid is null && clock.Elapsed > TimeSpan.FromSeconds(3))
                break;
            await Task.Delay(50, ct).ConfigureAwait(false);
        }
        var stderr = File.Exists(options.StderrPath) ? await File.ReadAllTextAsync(options.StderrPath, ct).ConfigureAwait(false) : "";
        if (Running(pidFile) is { } stuck) Kill(stuck, TimeSpan.FromSeconds(5));
        throw new QemuLaunchException($"QEMU for {options.Image.Board} did not come up listening on port {consolePort}", stderr.Trim());
    }

    /// <summary>Switches the board off: SIGTERM, then SIGKILL after the grace time. Off already is fine.</summary>
    public static bool Stop(string pidFile, TimeSpan grace)
    {
        if (Running(pidFile) is not { } pid) { File.Delete(pidFile); return false; }
        Kill(pid, grace);
        File.Delete(pidFile);
        return true;
    }

    /// <summary>The pid in the file if that process is still a QEMU (a recycled pid is never signalled).</summary>
    public static int? Running(string pidFile)
    {
        if (!File.Exists(pidFile)) return null;
        if (!int.TryParse(File.ReadAllText(pidFile).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)) return null;
        try
        {
            var cmd = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmd.Contains("qemu-system", StringComparison.Ordinal) && cmd.Contains(pidFile, StringComparison.Ordinal) && Alive(pid) ? pid : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    private static void Kill(int pid, TimeSpan grace)
    {
        Signal(pid, "TERM");
        if (WaitGone(pid, grace)) return;
        Signal(pid, "KILL");
        WaitGone(pid, TimeSpan.FromSeconds(5));
    }

    private static void Signal(int pid, string signal)
    {
        using var k = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-" + signal, pid.ToString(CultureInfo.InvariantCulture) }, RedirectStandardError = true });
        k?.WaitForExit(5000);
    }

    /// <summary>Gone or a zombie: QEMU was re-parented to whatever PID 1 is here, which may never reap it.</summary>
    private static bool WaitGone(int pid, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (Alive(pid))
        {
            if (clock.Elapsed > timeout) return false;
            Thread.Sleep(50);
        }
        return true;
    }

    private static bool Alive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException) { return false; }
    }

    /// <summary>Whether some socket listens on 127.0.0.1:port (state 0A in /proc/net/tcp).</summary>
    public static bool Listening(int port)
    {
        var hex = $":{port:X4} ";
        foreach (var line in File.ReadLines("/proc/net/tcp").Skip(1))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length > 3 && (f[1] + " ").EndsWith(hex, StringComparison.Ordinal) && f[3] == "0A") return true;
        }
        return false;
    }
}
