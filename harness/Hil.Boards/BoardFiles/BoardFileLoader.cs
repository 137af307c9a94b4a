using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Hil.Boards.BoardFiles;

/// <summary>
/// Loads and validates a board file. Every problem is reported with file, line, column and field;
/// all problems of a file are reported together (<see cref="BoardFileException"/>).
/// </summary>
public static class BoardFileLoader
{
    /// <summary>Power drivers known without registration; others (e.g. "qemu") come from <see cref="Power.PowerDrivers"/>.</summary>
    private static readonly string[] BuiltInDrivers = ["none", "manual", "command", "pdudaemon"];

    /// <summary>A board file is a page of YAML; anything larger is not one (a device, a wrong path).</summary>
    public const long MaxBytes = 1 << 20;

    public static BoardSpec Load(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full) && !Directory.Exists(full)) throw new BoardFileException([new BoardFileError(path, 0, 0, "(file)", "board file does not exist")]);
        string text;
        try
        {
            text = InputFiles.InputFile.ReadText(full, "board file", MaxBytes);
        }
        catch (InputFiles.InputFileException ex)
        {
            throw new BoardFileException([new BoardFileError(full, 1, 1, "(file)", ex.Problem)]);
        }
        return Parse(text, full);
    }

    public static BoardSpec Parse(string yaml, string fileName)
    {
        var errors = new List<BoardFileError>();
        var f = new YamlFields(fileName, errors);
        var stream = new YamlStream();
        var parser = new Parser(new StringReader(yaml));
        try
        {
            stream.Load(parser);
        }
        catch (YamlException ex)
        {
            // YamlDotNet's message repeats the position; keep only its explanation.
            var msg = ex.InnerException?.Message ?? ex.Message;
            throw new BoardFileException([new BoardFileError(fileName, (int)ex.Start.Line, (int)ex.Start.Column, "(syntax)", msg)]);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            // Some malformed input makes the scanner fail without a position: name the last good spot.
            var at = parser.Current?.End;
            throw new BoardFileException([new BoardFileError(fileName, (int)(at?.Line ?? 1), (int)(at?.Column ?? 1), "(syntax)",
                "not valid YAML near here (an unclosed bracket or quote?)")]);
        }
        if (stream.Documents.Count != 1)
            throw new BoardFileException([new BoardFileError(fileName, 1, 1, "(file)", "expected exactly one YAML document")]);

        var root = f.Map(stream.Documents[0].RootNode, "");
        if (root is null) throw new BoardFileException(errors);
        var baseDir = Path.GetDirectoryName(Path.GetFullPath(fileName)) ?? ".";

        var name = root.Str("name", required: true) ?? "";
        if (name.Length > 0 && !Regex.IsMatch(name, "^[A-Za-z0-9][A-Za-z0-9._-]*$"))
            f.Error(root.Raw("name"), "name", "use letters, digits, '.', '_' and '-' only (it names log files)");
        var description = root.Str("description");
        var console = ReadConsole(f, root.Map("console"), baseDir, allowFile: false);
        var secure = ReadConsole(f, root.Map("secure_console"), baseDir, allowFile: true);
        var ssh = ReadSsh(f, root.Map("ssh"), baseDir);
        var power = ReadPower(f, root.Map("power"));
        var login = ReadLogin(f, root.Map("login"), baseDir);
        var boot = ReadBoot(f, root.Map("boot"));
        var shell = ReadShell(f, root.Map("shell"));
        var facts = ResolvePathFacts(root.StrMap("facts"), baseDir);
        if (facts.TryGetValue("optee_threads", out var t) && (!int.TryParse(t, out var n) || n < 1 || n > 1024))
        {
            var node = root.Raw("facts") is YamlMappingNode fm && fm.Children.TryGetValue(new YamlScalarNode("optee_threads"), out var v) ? v : root.Raw("facts");
            f.Error(node, "facts.optee_threads", $"expected a whole number from 1 to 1024, got '{t}'");
        }
        root.Done();

        if (console is null && ssh is null)
            f.Error(root.Node, "(board)", "a board needs at least one link: console or ssh");
        if (console is null && (boot.Firmware ?? boot.Bootloader ?? boot.Kernel) is not null)
            f.Error(root.Raw("boot"), "boot", "boot stages are watched on the console, but the board has no console");

        if (errors.Count > 0) throw new BoardFileException(errors);
        return new BoardSpec(name, description, fileName, console, secure, ssh, power, boot, login, shell, facts);
    }

    /// <summary>
    /// Facts the suites read as host paths (a real board's module kit, libteec sysroot, optee.ko) are
    /// resolved like every other path of a board file: relative to it, <c>~/</c> the home directory.
    /// Other facts are free text and stay as written.
    /// </summary>
    public static readonly IReadOnlySet<string> PathFacts = new HashSet<string>(StringComparer.Ordinal) { "module_kit", "libteec_sysroot", "optee_module" };

    private static IReadOnlyDictionary<string, string> ResolvePathFacts(IReadOnlyDictionary<string, string> facts, string baseDir) =>
        facts.ToDictionary(kv => kv.Key, kv => PathFacts.Contains(kv.Key) && kv.Value.Length > 0 ? BoardPaths.Resolve(kv.Value, baseDir) : kv.Value, StringComparer.Ordinal);

    private static ConsoleSpec? ReadConsole(YamlFields f, YamlMap? m, string baseDir, bool allowFile)
    {
        if (m is null) return null;
        var device = m.Str("device", required: true);
        var baud = m.Int("baud", 50, 4_000_000) ?? 115200;
        var chunk = m.Int("tx_chunk", 1, 65536) ?? 4096;
        var delay = m.Has("tx_delay") ? m.Duration("tx_delay", TimeSpan.FromSeconds(1)) ?? TimeSpan.Zero : TimeSpan.Zero;
        var reconnect = m.Duration("reconnect_timeout") ?? TimeSpan.FromSeconds(60);
        m.Done();
        if (device is null) return null;
        var field = $"{m.Path}.device";
        if (device.StartsWith("tcp://", StringComparison.Ordinal) || device.StartsWith("telnet://", StringComparison.Ordinal))
        {
            var scheme = device[..device.IndexOf(':')];
            if (!Uri.TryCreate(device, UriKind.Absolute, out var uri) || uri.Port <= 0 || uri.Host.Length == 0
                || device.Count(c => c == ':') != 2 || uri.AbsolutePath is not ("" or "/"))
            {
                f.Error(m.Raw("device"), field, $"expected {scheme}://host:port, got '{device}'");
                return null;
            }
            var kind = scheme == "telnet" ? ConsoleKind.Telnet : ConsoleKind.Tcp;
            return new ConsoleSpec(kind, device, uri.Host, uri.Port, baud, chunk, delay, reconnect) { BaudGiven = m.Has("baud") };
        }
        if (device.StartsWith("unix:", StringComparison.Ordinal))
            return new ConsoleSpec(ConsoleKind.UnixSocket, BoardPaths.Resolve(device["unix:".Length..], baseDir), null, 0, baud, chunk, delay, reconnect);
        if (device.StartsWith("file:", StringComparison.Ordinal))
        {
            if (!allowFile) f.Error(m.Raw("device"), field, "file: consoles are read-only; use them for secure_console");
            return new ConsoleSpec(ConsoleKind.File, BoardPaths.Resolve(device["file:".Length..], baseDir), null, 0, baud, chunk, delay, reconnect);
        }
        if (device.Contains("://", StringComparison.Ordinal))
        {
            f.Error(m.Raw("device"), field, $"unsupported scheme in '{device}'; use a device path, tcp://host:port, telnet://host:port, unix:/path or file:/path");
            return null;
        }
        // Device paths are not checked for existence here: USB adapters appear only once the board is powered.
        return new ConsoleSpec(ConsoleKind.SerialDevice, BoardPaths.Resolve(device, baseDir), null, 0, baud, chunk, delay, reconnect);
    }

    private static SshSpec? ReadSsh(YamlFields f, YamlMap? m, string baseDir)
    {
        if (m is null) return null;
        var host = m.Str("host", required: true);
        var port = m.Int("port", 1, 65535) ?? 22;
        var user = m.Str("user", required: true);
        var key = m.Str("key_file");
        var passphrase = m.Secret("key_passphrase", baseDir);
        var password = m.Secret("password", baseDir);
        var hostKeys = m.StrList("host_key") ?? [];
        var knownHosts = m.Str("known_hosts");
        var acceptNew = m.Bool("accept_new_host_key") ?? false;
        var keepAlive = m.Duration("keepalive") ?? TimeSpan.FromSeconds(10);
        var connect = m.Duration("connect_timeout") ?? TimeSpan.FromSeconds(10);
        var reconnect = m.Duration("reconnect_timeout") ?? TimeSpan.FromSeconds(120);
        foreach (var k in hostKeys)
            if (!Regex.IsMatch(k, @"^SHA256:[A-Za-z0-9+/]{43}=?$"))
                f.Error(m.Raw("host_key"), $"{m.Path}.host_key", $"expected a SHA256 fingerprint as printed by `ssh-keygen -lf key.pub` (SHA256:...), got '{k}'");
        if (key is null && password is null)
            f.Error(m.Node, m.Path, "give key_file or password (a secret) for authentication");
        if (passphrase is not null && key is null)
            f.Error(m.Raw("key_passphrase"), $"{m.Path}.key_passphrase", "needs key_file");
        if (hostKeys.Count == 0 && knownHosts is null)
            f.Error(m.Node, m.Path, "host keys are always verified: give host_key (pinned SHA256 fingerprints) or known_hosts (a file; with accept_new_host_key: true it may be recorded on first use)");
        if (acceptNew && knownHosts is null)
            f.Error(m.Raw("accept_new_host_key"), $"{m.Path}.accept_new_host_key", "needs known_hosts: the file where a first-seen key is recorded");
        var knownHostsPath = knownHosts is null ? null : BoardPaths.Resolve(knownHosts, baseDir);
        if (knownHostsPath is not null) CheckKnownHostsFile(f, m, knownHostsPath, acceptNew);
        m.Done();
        if (host is null || user is null) return null;
        return new SshSpec(host, port, user, key is null ? null : BoardPaths.Resolve(key, baseDir), passphrase, password, hostKeys,
            knownHostsPath, acceptNew, keepAlive, connect, reconnect);
    }

    /// <summary>
    /// known_hosts must be a regular file: /dev/null with accept_new_host_key would "record" every key
    /// and forget it (accept anything, forever), a FIFO blocks the reader, /dev/zero never ends. With
    /// accept_new_host_key it must also be writable (or creatable), or first-seen keys could not be kept.
    /// A missing file without accept_new is allowed here (the QEMU boards' file appears at provisioning);
    /// every key is then refused as unknown, with the file named.
    /// </summary>
    private static void CheckKnownHostsFile(YamlFields f, YamlMap m, string path, bool acceptNew)
    {
        var kind = FileKinds.Of(path);
        if (kind is not (FileKind.Regular or FileKind.Missing))
        {
            f.Error(m.Raw("known_hosts"), $"{m.Path}.known_hosts",
                $"{path} is {FileKinds.Describe(kind)}: known_hosts must be a regular file"
                + (acceptNew ? " (accept_new_host_key would record keys nowhere and accept any key)" : ""));
            return;
        }
        if (!acceptNew) return;
        if (FileKinds.WhyNotAppendable(path) is { } why)
            f.Error(m.Raw("accept_new_host_key"), $"{m.Path}.accept_new_host_key",
                $"needs a known_hosts file it can write first-seen keys to: {why}");
    }

    private static PowerSpec ReadPower(YamlFields f, YamlMap? m)
    {
        if (m is null) return PowerSpec.None;
        var driver = m.Str("driver", required: true) ?? "none";
        var on = m.StrList("on");
        var off = m.StrList("off");
        var cycle = m.StrList("cycle");
        var status = m.StrList("status");
        var url = m.Str("url");
        var hostname = m.Str("hostname");
        var port = m.Str("port");
        var offTime = m.Duration("off_time") ?? TimeSpan.FromSeconds(3);
        var cmdTimeout = m.Duration("command_timeout") ?? TimeSpan.FromSeconds(30);
        var settings = m.StrMap("settings");
        var known = BuiltInDrivers.Concat(Power.PowerDrivers.Registered).ToList();
        if (!known.Contains(driver))
            f.Error(m.Raw("driver"), $"{m.Path}.driver", $"unknown power driver '{driver}'; known: {string.Join(", ", known)}");
        if (driver == "command" && on is null && cycle is null)
            f.Error(m.Node, m.Path, "the command driver needs on (and off) or cycle: each a command as a list of arguments");
        if (driver == "command" && (on is null) != (off is null))
            f.Error(m.Node, m.Path, "give both on and off, or neither");
        if (driver == "pdudaemon")
        {
            if (url is null || !Uri.TryCreate(url, UriKind.Absolute, out var u) || (u.Scheme != "http" && u.Scheme != "https"))
                f.Error(m.Raw("url") ?? m.Node, $"{m.Path}.url", "pdudaemon needs url: http://host:port of the PDUDaemon server");
            if (hostname is null) f.Error(m.Node, $"{m.Path}.hostname", "pdudaemon needs hostname: the PDU name in PDUDaemon's config");
            if (port is null) f.Error(m.Node, $"{m.Path}.port", "pdudaemon needs port: the PDU outlet");
        }
        m.Done();
        return new PowerSpec(driver, on, off, cycle, status, url, hostname, port, offTime, cmdTimeout, settings);
    }

    private static LoginSpec ReadLogin(YamlFields f, YamlMap? m, string baseDir)
    {
        if (m is null) return LoginSpec.NoLogin;
        var user = m.Str("user");
        var password = m.Secret("password", baseDir);
        var lp = Pattern(f, m, "login_prompt") ?? LoginSpec.DefaultLoginPrompt;
        var pp = Pattern(f, m, "password_prompt") ?? LoginSpec.DefaultPasswordPrompt;
        var sp = Pattern(f, m, "shell_prompt") ?? LoginSpec.DefaultShellPrompt;
        var timeout = m.Duration("timeout") ?? TimeSpan.FromSeconds(60);
        if (password is not null && user is null)
            f.Error(m.Raw("password"), $"{m.Path}.password", "a password needs a user");
        m.Done();
        return new LoginSpec(user, password, lp, pp, sp, timeout);
    }

    private static BootSpec ReadBoot(YamlFields f, YamlMap? m)
    {
        if (m is null) return BootSpec.Default;
        var fw = ReadStage(f, m.Map("firmware"));
        var bl = ReadStage(f, m.Map("bootloader"));
        var k = ReadStage(f, m.Map("kernel"));
        var login = m.Duration("login_timeout") ?? TimeSpan.FromSeconds(120);
        m.Done();
        return new BootSpec(fw, bl, k, login);
    }

    private static StageSpec? ReadStage(YamlFields f, YamlMap? m)
    {
        if (m is null) return null;
        var expect = Pattern(f, m, "expect");
        if (expect is null && !m.Has("expect")) f.Error(m.Node, $"{m.Path}.expect", "is required: the console text (regex) that shows this stage was reached");
        var timeout = m.Duration("timeout") ?? TimeSpan.FromSeconds(60);
        InterruptSpec? interrupt = null;
        if (m.Map("interrupt") is { } im)
        {
            var send = im.Str("send") ?? " ";
            var prompt = Pattern(f, im, "prompt");
            if (prompt is null && !im.Has("prompt")) f.Error(im.Node, $"{im.Path}.prompt", "is required: the bootloader prompt (regex), e.g. '=> '");
            var commands = im.StrList("commands") ?? [];
            var ct = im.Duration("command_timeout") ?? TimeSpan.FromSeconds(10);
            im.Done();
            interrupt = new InterruptSpec(Unescape(f, im, send), prompt ?? "", commands, ct);
        }
        m.Done();
        return new StageSpec(expect ?? "", timeout, interrupt);
    }

    private static ShellSpec ReadShell(YamlFields f, YamlMap? m)
    {
        if (m is null) return ShellSpec.Default;
        var dir = m.Str("scratch_dir");
        if (dir is not null && !dir.StartsWith('/')) f.Error(m.Raw("scratch_dir"), $"{m.Path}.scratch_dir", "must be an absolute path on the board");
        var timeout = m.Duration("command_timeout") ?? TimeSpan.FromSeconds(30);
        var cols = m.Int("columns", 40, 4096) ?? 250;
        m.Done();
        return new ShellSpec(dir, timeout, cols);
    }

    private static string? Pattern(YamlFields f, YamlMap m, string key)
    {
        var s = m.Str(key);
        if (s is null) return null;
        try
        {
            _ = new Regex(s);
            return s;
        }
        catch (ArgumentException ex)
        {
            f.Error(m.Raw(key), $"{m.Path}.{key}", $"not a valid regular expression: {ex.Message}");
            return null;
        }
    }

    /// <summary>Lets a board file name control keys: "\x03" (Ctrl-C), "\r", "\n", "\e".</summary>
    /// <summary>C-like escapes (\n, \x03, \u0003) in what is typed at the bootloader; a bad one is the file's mistake.</summary>
    private static string Unescape(YamlFields f, YamlMap m, string s)
    {
        try
        {
            return Regex.Unescape(s);
        }
        catch (ArgumentException)
        {
            f.Error(m.Raw("send"), $"{m.Path}.send", $"'{s}' has an escape that is not one (use \\n, \\r, \\xHH or \\uHHHH)");
            return " ";
        }
    }
}
