namespace Hil.Boards.BoardFiles;

/// <summary>A board as its board file describes it (boards/*.yaml). Paths are absolute after loading.</summary>
public sealed record BoardSpec(
    string Name,
    string? Description,
    string SourceFile,
    ConsoleSpec? Console,
    ConsoleSpec? SecureConsole,
    SshSpec? Ssh,
    PowerSpec Power,
    BootSpec Boot,
    LoginSpec Login,
    ShellSpec Shell,
    IReadOnlyDictionary<string, string> Facts)
{
    /// <summary>OP-TEE thread count if the board file knows it (facts.optee_threads).</summary>
    public int? OpteeThreads => Facts.TryGetValue("optee_threads", out var s) && int.TryParse(s, out var n) ? n : null;
}

/// <summary>Where a console's bytes come from.</summary>
public enum ConsoleKind { SerialDevice, Tcp, Telnet, UnixSocket, File }

/// <summary>
/// A console: a tty/pty path, <c>tcp://host:port</c> (ser2net raw TCP), <c>telnet://host:port</c>
/// (telnet with RFC 2217, ser2net's <c>telnet(rfc2217)</c>), <c>unix:/path</c> (QEMU
/// <c>-serial unix:path,server</c>), or <c>file:/path</c> (a growing log file, read-only).
/// </summary>
public sealed record ConsoleSpec(
    ConsoleKind Kind,
    string Address,
    string? Host,
    int Port,
    int Baud,
    int TxChunk,
    TimeSpan TxDelay,
    TimeSpan ReconnectTimeout)
{
    /// <summary>True when the board file wrote <c>baud:</c>: only then is a telnet console's port set with RFC 2217.</summary>
    public bool BaudGiven { get; init; }

    public override string ToString() => Kind switch
    {
        ConsoleKind.Tcp => $"tcp://{Host}:{Port}",
        ConsoleKind.Telnet => $"telnet://{Host}:{Port}",
        ConsoleKind.UnixSocket => $"unix:{Address}",
        ConsoleKind.File => $"file:{Address}",
        _ => Address,
    };
}

/// <summary>A secret is never written in a board file: it names an environment variable or a file.</summary>
public sealed record SecretRef(string? EnvVar, string? FilePath)
{
    /// <summary>Reads the secret now. The message names where it looked, never the value.</summary>
    public string Resolve()
    {
        if (EnvVar is not null)
        {
            // A SecretRef made in code (not by the loader) is registered when first used.
            Secrets.ChildEnvironment.RegisterSecretVariable(EnvVar);
            return Environment.GetEnvironmentVariable(EnvVar)
                   ?? throw new Failures.TestErrorException($"secret: environment variable {EnvVar} is not set");
        }
        if (FilePath is not null)
        {
            if (!File.Exists(FilePath)) throw new Failures.TestErrorException($"secret: file {FilePath} does not exist");
            // A trailing newline is what editors add; it is never part of a password.
            return File.ReadAllText(FilePath).TrimEnd('\r', '\n');
        }
        throw new Failures.TestErrorException("secret: neither env nor file given");
    }

    public override string ToString() => EnvVar is not null ? $"env:{EnvVar}" : $"file:{FilePath}";
}

public sealed record SshSpec(
    string Host,
    int Port,
    string User,
    string? KeyFile,
    SecretRef? KeyPassphrase,
    SecretRef? Password,
    IReadOnlyList<string> HostKeys,
    string? KnownHosts,
    bool AcceptNewHostKey,
    TimeSpan KeepAlive,
    TimeSpan ConnectTimeout,
    TimeSpan ReconnectTimeout);

public sealed record PowerSpec(
    string Driver,
    IReadOnlyList<string>? On,
    IReadOnlyList<string>? Off,
    IReadOnlyList<string>? Cycle,
    IReadOnlyList<string>? Status,
    string? Url,
    string? PduHostname,
    string? PduPort,
    TimeSpan OffTime,
    TimeSpan CommandTimeout,
    IReadOnlyDictionary<string, string> Settings)
{
    public static PowerSpec None { get; } = new("none", null, null, null, null, null, null, null,
        TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), new Dictionary<string, string>());
}

/// <summary>One boot stage: the console text that proves it was reached, and how long to wait for it.</summary>
public sealed record StageSpec(string Expect, TimeSpan Timeout, InterruptSpec? Interrupt);

/// <summary>How to stop a bootloader's autoboot and what to type at its prompt (the last command usually boots).</summary>
public sealed record InterruptSpec(string Send, string Prompt, IReadOnlyList<string> Commands, TimeSpan CommandTimeout);

/// <summary>Stages in boot order; any may be absent (a QEMU board without firmware banner, a board without bootloader stop).</summary>
public sealed record BootSpec(StageSpec? Firmware, StageSpec? Bootloader, StageSpec? Kernel, TimeSpan LoginTimeout)
{
    public static BootSpec Default { get; } = new(null, null, null, TimeSpan.FromSeconds(120));
}

/// <summary>Console login. <see cref="User"/> null = no login (an auto-login shell on the console).</summary>
public sealed record LoginSpec(
    string? User,
    SecretRef? Password,
    string LoginPrompt,
    string PasswordPrompt,
    string ShellPrompt,
    TimeSpan Timeout)
{
    public static LoginSpec NoLogin { get; } = new(null, null, DefaultLoginPrompt, DefaultPasswordPrompt, DefaultShellPrompt, TimeSpan.FromSeconds(60));
    public const string DefaultLoginPrompt = @"login: ?$";
    public const string DefaultPasswordPrompt = @"[Pp]assword: ?$";
    public const string DefaultShellPrompt = @"[#$>] ?$";
}

/// <summary>The console shell. <see cref="ScratchDir"/> null = the first writable of /dev/shm, /run, /tmp.</summary>
public sealed record ShellSpec(string? ScratchDir, TimeSpan CommandTimeout, int Columns)
{
    public static ShellSpec Default { get; } = new(null, TimeSpan.FromSeconds(30), 250);
}
