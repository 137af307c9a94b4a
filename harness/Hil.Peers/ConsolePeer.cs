namespace Hil.Peers;

/// <summary>Which shell the console peer runs after login.</summary>
public enum PeerShell { Dash, Bash, Busybox }

/// <summary>How the harness reaches the console peer.</summary>
public enum PeerTransport { Pty, Tcp, Unix }

/// <summary>
/// A real interactive shell on a real pseudo-terminal, behind socat: like a board's serial console
/// with getty and login. socat gives the shell its own pty (echo, canonical mode, CR/LF translation as
/// on a UART) and offers the other end either as a pty path (opened with System.IO.Ports) or as a raw
/// TCP port (like ser2net). socat's raw dump records every byte the shell side sent, so the
/// harness's console log can be compared with it byte for byte.
/// </summary>
public sealed class ConsolePeer : IAsyncDisposable
{
    private readonly PeerShell _shell;
    private readonly string? _password;
    private readonly string _user;
    private readonly PeerTransport _transport;
    private readonly string? _preLogin;
    private readonly string? _bootScript;
    private readonly bool _echoPassword;
    private PeerProcess? _socat;
    private int _generation;

    private ConsolePeer(string dir, PeerShell shell, string user, string? password, PeerTransport transport, string? preLogin, string? bootScript, bool echoPassword)
    {
        _echoPassword = echoPassword;
        _bootScript = bootScript;
        Directory = dir;
        _shell = shell;
        _user = user;
        _password = password;
        _transport = transport;
        _preLogin = preLogin;
    }

    public string Directory { get; }

    /// <summary>The pty path the harness opens (Pty transport).</summary>
    public string TtyPath => Path.Combine(Directory, "ttyHIL0");

    /// <summary>The TCP port (Tcp transport).</summary>
    public int Port { get; private set; }

    public string PasswordFile => Path.Combine(Directory, "password");

    /// <summary>The unix-domain socket path (Unix transport, like QEMU's <c>-serial unix:PATH,server</c>).</summary>
    public string SocketPath => Path.Combine(Directory, "console.sock");

    /// <summary>The board-file device string for this console.</summary>
    public string Device => _transport switch
    {
        PeerTransport.Pty => TtyPath,
        PeerTransport.Unix => $"unix:{SocketPath}",
        _ => $"tcp://127.0.0.1:{Port}",
    };

    /// <summary>Every byte the shell side sent towards the harness in the current run of socat.</summary>
    public string SentDumpPath => Path.Combine(Directory, $"sent-{_generation}.raw");

    /// <summary>
    /// Starts the peer. <paramref name="password"/> null = no login (an auto-login console: the shell
    /// starts at once). <paramref name="preLogin"/> is printed before the login prompt (boot noise);
    /// <paramref name="bootScript"/> is bash code run first (a scripted bootloader for boot-stage tests).
    /// <paramref name="echoPassword"/>: the password prompt leaves the tty's echo on, so the typed password
    /// comes back on the console (a misconfigured getty, a bootloader-style password prompt).
    /// </summary>
    public static async Task<ConsolePeer> StartAsync(PeerShell shell = PeerShell.Dash, string? password = "hil-secret",
        PeerTransport transport = PeerTransport.Pty, string user = "hiltest", string? preLogin = null, string? bootScript = null,
        bool echoPassword = false)
    {
        var dir = System.IO.Directory.CreateTempSubdirectory("hil-console-").FullName;
        var peer = new ConsolePeer(dir, shell, user, password, transport, preLogin, bootScript, echoPassword);
        if (password is not null) await File.WriteAllTextAsync(peer.PasswordFile, password + "\n").ConfigureAwait(false);
        peer.WriteLoginScript();
        await peer.StartSocatAsync().ConfigureAwait(false);
        return peer;
    }

    private string LoginScript => Path.Combine(Directory, "login.sh");

    private void WriteLoginScript()
    {
        var shellCmd = _shell switch
        {
            PeerShell.Bash => "/bin/bash --norc --noprofile -i",
            // busybox ash with only busybox applets on PATH, like a small board's initramfs.
            PeerShell.Busybox => "/bin/busybox ash -i",
            _ => "/bin/dash -i",
        };
        var path = "/usr/sbin:/usr/bin:/sbin:/bin";
        if (_shell == PeerShell.Busybox)
        {
            path = Path.Combine(Directory, "busybox-bin");
            System.IO.Directory.CreateDirectory(path);
            PeerProcess.Run("/bin/busybox", "--install", "-s", path);
        }
        var prompt = _shell switch { PeerShell.Bash => "bash-peer# ", PeerShell.Busybox => "~ # ", _ => "# " };
        // A small getty+login: a login prompt, a password prompt without echo, "Login incorrect" on a
        // mismatch, then an interactive shell with a clean environment.
        var login = _password is null ? "" : $$"""
            while :; do
              printf 'hil-peer login: '
              IFS= read -r user || exit 0
              {{(_echoPassword ? "printf 'Password: '; IFS= read -r pass" : "stty -echo; printf 'Password: '; IFS= read -r pass; stty echo; printf '\\n'")}}
              if [ "$user" = '{{_user}}' ] && [ "$pass" = "$(cat '{{PasswordFile}}')" ]; then break; fi
              sleep 1; printf '\nLogin incorrect\n'
            done
            """;
        var pre = _preLogin is null ? "" : $"cat '{Path.Combine(Directory, "prelogin.txt")}'\n";
        if (_preLogin is not null) File.WriteAllText(Path.Combine(Directory, "prelogin.txt"), _preLogin);
        File.WriteAllText(LoginScript, $"""
            #!/bin/bash
            {_bootScript}
            {pre}{login}
            cd /tmp
            exec env -i HOME=/root TERM=vt100 PATH={path} PS1='{prompt}' {shellCmd}

            """);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(LoginScript, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private async Task StartSocatAsync()
    {
        _generation++;
        var shellSide = $"EXEC:{LoginScript},pty,setsid,ctty,stderr";
        if (_transport == PeerTransport.Pty)
        {
            if (File.Exists(TtyPath)) File.Delete(TtyPath);
            _socat = PeerProcess.Start(["socat", "-R", SentDumpPath, $"PTY,link={TtyPath},raw,echo=0", shellSide], Path.Combine(Directory, "socat.log"));
            await PeerProcess.WaitForFileAsync(TtyPath, TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            return;
        }
        if (_transport == PeerTransport.Unix)
        {
            if (File.Exists(SocketPath)) File.Delete(SocketPath);
            _socat = PeerProcess.Start(["socat", "-R", SentDumpPath, $"UNIX-LISTEN:{SocketPath}", shellSide], Path.Combine(Directory, "socat.log"));
            await PeerProcess.WaitForFileAsync(SocketPath, TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            return;
        }
        for (var attempt = 0; ; attempt++)
        {
            if (Port == 0 || attempt > 0) Port = PeerProcess.FreePort();
            _socat = PeerProcess.Start(["socat", "-R", SentDumpPath, $"TCP-LISTEN:{Port},bind=127.0.0.1,reuseaddr,nodelay", shellSide], Path.Combine(Directory, "socat.log"));
            try
            {
                await WaitListeningAsync(Port, TimeSpan.FromSeconds(10), () => !_socat.HasExited).ConfigureAwait(false);
                return;
            }
            catch (TimeoutException) when (attempt < 3)
            {
                _socat.Dispose();
            }
        }
    }

    // Probing a one-shot TCP-LISTEN with a connection would consume it: look at the socket table instead.
    private static async Task WaitListeningAsync(int port, TimeSpan timeout, Func<bool> alive)
    {
        var hex = $":{port:X4} ";
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < timeout && alive())
        {
            var lines = await File.ReadAllLinesAsync("/proc/net/tcp").ConfigureAwait(false);
            if (lines.Skip(1).Any(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [_, var local, _, "0A", ..] && (local + " ").Contains(hex)))
                return;
            await Task.Delay(20).ConfigureAwait(false);
        }
        throw new TimeoutException($"socat did not listen on {port}");
    }

    /// <summary>Makes the console vanish (as a USB adapter does on a power cycle): socat and the shell die, the pty path goes.</summary>
    public void Unplug()
    {
        _socat?.Dispose();
        _socat = null;
    }

    /// <summary>Brings the console back on the same path/port with a fresh login (the board rebooted).</summary>
    public Task PlugInAsync() => StartSocatAsync();

    public ValueTask DisposeAsync()
    {
        Unplug();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
        return ValueTask.CompletedTask;
    }
}
