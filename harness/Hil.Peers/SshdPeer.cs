using System.Diagnostics;
using System.Security.Cryptography;

namespace Hil.Peers;

/// <summary>
/// A real OpenSSH sshd for tests and benchmarks: its own config, host key and user key in a temp
/// directory, listening on a free 127.0.0.1 port. The system's sshd and its config are not touched.
/// </summary>
public sealed class SshdPeer : IAsyncDisposable
{
    private PeerProcess? _process;

    private SshdPeer(string dir, int port, bool passwordUser)
    {
        Directory = dir;
        Port = port;
        if (passwordUser) PasswordUserPassword = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
    }

    /// <summary>
    /// The user that logs in with a password (only with <c>passwordUser: true</c>). It exists only inside
    /// the sshd's own mount namespace, where copies of /etc/passwd, /etc/shadow and /etc/group with this
    /// user added are bind-mounted over the real ones: the machine's accounts are never touched, and
    /// nothing is left behind if a test dies.
    /// </summary>
    public string PasswordUser => "hilpwtest";

    /// <summary>The password user's password (random per peer); null without a password user.</summary>
    public string? PasswordUserPassword { get; }

    public string Directory { get; }
    public int Port { get; private set; }
    public string User { get; } = Environment.UserName;
    public string HostKeyPath => Path.Combine(Directory, "host_ed25519");
    public string UserKeyPath => Path.Combine(Directory, "user_ed25519");
    public string LogPath => Path.Combine(Directory, "sshd.log");

    /// <summary>The host key's fingerprint as <c>ssh-keygen -lf</c> prints it (SHA256:...).</summary>
    public string HostKeyFingerprint { get; private set; } = "";

    /// <summary>The public host key line ("ssh-ed25519 AAAA...") for known_hosts files.</summary>
    public string HostKeyLine => File.ReadAllText(HostKeyPath + ".pub").Trim();

    /// <param name="directory">where config, keys and logs go (a new temp directory by default)</param>
    /// <param name="passwordUser">also accept password logins for <see cref="PasswordUser"/> (needs root: a mount namespace)</param>
    public static async Task<SshdPeer> StartAsync(string? directory = null, bool passwordUser = false)
    {
        var dir = directory ?? System.IO.Directory.CreateTempSubdirectory("hil-sshd-").FullName;
        var peer = new SshdPeer(dir, 0, passwordUser);
        if (passwordUser) peer.WriteAccountFiles();
        peer.NewHostKey();
        PeerProcess.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hil-test-user", "-f", peer.UserKeyPath);
        File.Copy(peer.UserKeyPath + ".pub", Path.Combine(dir, "authorized_keys"));
        await peer.StartProcessAsync().ConfigureAwait(false);
        return peer;
    }

    /// <summary>Replaces the host key (as a reinstalled board would); takes effect at the next restart.</summary>
    public void NewHostKey()
    {
        foreach (var f in new[] { HostKeyPath, HostKeyPath + ".pub" })
            if (File.Exists(f)) File.Delete(f);
        PeerProcess.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hil-test-host", "-f", HostKeyPath);
        var line = PeerProcess.Run("ssh-keygen", "-l", "-E", "sha256", "-f", HostKeyPath + ".pub");
        HostKeyFingerprint = line.Split(' ')[1];
    }

    private async Task StartProcessAsync()
    {
        // sshd refuses to start without its privilege-separation directory.
        System.IO.Directory.CreateDirectory("/run/sshd");
        for (var attempt = 0; ; attempt++)
        {
            if (Port == 0 || attempt > 0) Port = PeerProcess.FreePort();
            WriteConfig();
            _process = PeerProcess.Start(SshdArgv(), LogPath);
            try
            {
                await PeerProcess.WaitForPortAsync(Port, TimeSpan.FromSeconds(10), () => !_process.HasExited).ConfigureAwait(false);
                return;
            }
            catch (System.Net.Sockets.SocketException) when (attempt < 3)
            {
                // The port was taken between choosing and binding it: choose another.
                _process.Dispose();
            }
        }
    }

    private string AccountFile(string name) => Path.Combine(Directory, "etc-" + name);

    /// <summary>
    /// sshd with its config; with a password user, inside a private mount namespace (unshare -m) where
    /// the account files are this peer's copies. Paths travel as positional arguments, never spliced
    /// into the script.
    /// </summary>
    private List<string> SshdArgv()
    {
        var sshd = File.Exists("/usr/sbin/sshd") ? "/usr/sbin/sshd" : "sshd";
        List<string> argv = [sshd, "-D", "-e", "-f", Path.Combine(Directory, "sshd_config")];
        if (PasswordUserPassword is null) return argv;
        return
        [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            "mount --bind \"$1\" /etc/passwd && mount --bind \"$2\" /etc/shadow && mount --bind \"$3\" /etc/group && shift 3 && exec \"$@\"",
            "sshd-peer", AccountFile("passwd"), AccountFile("shadow"), AccountFile("group"), .. argv,
        ];
    }

    /// <summary>Copies of the account files with the password user added (its password hashed by openssl, SHA-512 crypt).</summary>
    private void WriteAccountFiles()
    {
        const int id = 64_987; // outside the ranges Debian allocates from (system < 1000, users 1000–59999)
        var hash = PeerProcess.Run("openssl", ["passwd", "-6", "-stdin"], PasswordUserPassword + "\n").Trim();
        string Without(string file) => string.Concat(File.ReadAllLines(file).Where(l => !l.StartsWith(PasswordUser + ":", StringComparison.Ordinal)).Select(l => l + "\n"));
        File.WriteAllText(AccountFile("passwd"), Without("/etc/passwd") + $"{PasswordUser}:x:{id}:{id}:HilHarness password test:{Directory}:/bin/sh\n");
        File.WriteAllText(AccountFile("shadow"), Without("/etc/shadow") + $"{PasswordUser}:{hash}:19000:0:99999:7:::\n");
        File.WriteAllText(AccountFile("group"), Without("/etc/group") + $"{PasswordUser}:x:{id}:\n");
        // The shadow copy holds root's hash too: readable by root only, like the original (the peer's
        // temp directory is private already; this keeps it so if a caller passes its own directory).
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(AccountFile("shadow"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    private void WriteConfig()
    {
        File.WriteAllText(Path.Combine(Directory, "sshd_config"), $"""
            Port {Port}
            ListenAddress 127.0.0.1
            HostKey {HostKeyPath}
            PidFile {Path.Combine(Directory, "sshd.pid")}
            AuthorizedKeysFile {Path.Combine(Directory, "authorized_keys")}
            PermitRootLogin prohibit-password
            PubkeyAuthentication yes
            PasswordAuthentication {(PasswordUserPassword is null ? "no" : "yes")}
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            MaxSessions 100
            MaxStartups 100
            Subsystem sftp internal-sftp
            LogLevel VERBOSE
            # HOME points into the peer's directory: the host user's shell start-up files (a root
            # .bashrc running pyenv takes a second) must not be part of what tests and benchmarks measure.
            SetEnv HOME={Directory}

            """);
    }

    /// <summary>Stops the server (established connections die with it).</summary>
    public void Stop()
    {
        _process?.Dispose();
        _process = null;
    }

    /// <summary>Stops and starts again on the same port (like a board rebooting), optionally after a pause.</summary>
    public async Task RestartAsync(TimeSpan? downFor = null)
    {
        Stop();
        if (downFor is { } d) await Task.Delay(d).ConfigureAwait(false);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            _process = PeerProcess.Start(SshdArgv(), LogPath);
            try
            {
                await PeerProcess.WaitForPortAsync(Port, TimeSpan.FromSeconds(10), () => !_process.HasExited).ConfigureAwait(false);
                return;
            }
            catch (System.Net.Sockets.SocketException) when (clock.Elapsed < TimeSpan.FromSeconds(20))
            {
                // The old listener may linger for a moment.
                _process.Dispose();
                await Task.Delay(200).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Args for OpenSSH's ssh client against this server (strict host-key checking on).</summary>
    public IReadOnlyList<string> SshClientArgs(string knownHostsFile) =>
    [
        "-p", Port.ToString(), "-i", UserKeyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes", "-o", $"UserKnownHostsFile={knownHostsFile}", "-o", "LogLevel=ERROR",
    ];

    public ValueTask DisposeAsync()
    {
        Stop();
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
